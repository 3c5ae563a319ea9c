// ClipForge Studio: edit one video's clips through the public /v1 API.
// Plain script, no dependencies, so the page works offline. The API key lives in this tab's
// sessionStorage (taken from the URL fragment, which browsers never send, or the form), and in
// a cookie scoped to /studio/media for the source <video>, which cannot send an Authorization
// header. Exports play and download from the URLs the API hands out with them.
"use strict";
(() => {
  const root = document.body.dataset.root || "";
  const videoId = document.body.dataset.video;
  const $ = (id) => document.getElementById(id);
  const STORE = "clipforge.studio.key";
  const COOKIE = "clipforge_studio_key";
  const POLL_MS = 1500;
  const state = {
    key: null,
    duration: 0,
    words: [], // every word of the transcript: {start, end, text}
    clips: [],
    selected: null, // clip id
    clipWords: [], // the selected clip's words (GET /v1/clips/{id}/words)
    exports: new Map(), // export id -> export
    drag: null,
  };
  let queue = Promise.resolve(); // edits run one after another, in the order asked

  // ---- helpers -----------------------------------------------------------------------
  const clock = (t) => {
    const m = Math.floor(t / 60);
    const s = (t - m * 60).toFixed(1).padStart(4, "0");
    return `${m}:${s}`;
  };
  const say = (text, isError = false) => {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  };
  const randomId = () => {
    // crypto.randomUUID needs a secure context; the API may be reached over plain http.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };
  const el = (tag, attrs = {}, text = "") => {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  };
  const selected = () => state.clips.find((c) => c.id === state.selected) || null;
  const mid = (w) => (w.start + w.end) / 2;

  function setKey(key) {
    state.key = key;
    sessionStorage.setItem(STORE, key);
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${COOKIE}=${key}; Path=${root}/studio/media; SameSite=Strict${secure}`;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (method !== "GET") headers["Idempotency-Key"] = `studio-${randomId()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(root + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401) askForKey("That API key was refused.");
      const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
      throw new Error(message);
    }
    return data;
  }

  function run(label, fn) {
    queue = queue.then(fn).catch((err) => say(`${label}: ${err.message}`, true));
    return queue;
  }

  // ---- loading ---------------------------------------------------------------------
  function askForKey(why) {
    sessionStorage.removeItem(STORE);
    $("key-form").hidden = false;
    $("editor").hidden = true;
    say(why, Boolean(why));
    $("key-input").focus();
  }

  async function load() {
    say("Loading the video…");
    const video = await api("GET", `/v1/videos/${videoId}`);
    $("video-title").textContent = (video.metadata && video.metadata.title) || `Video ${videoId}`;
    if (video.status !== "ready") {
      say(`The video is ${video.status}; its clips can be edited once it is ready.`);
      return;
    }
    const transcript = await api("GET", `/v1/videos/${videoId}/transcript`);
    state.words = transcript.segments.flatMap((s) => s.words);
    state.duration = video.duration_s || transcript.duration_s;
    let cursor = null;
    state.clips = [];
    do {
      const page = await api(
        "GET",
        `/v1/videos/${videoId}/clips?limit=100${cursor ? `&cursor=${cursor}` : ""}`,
      );
      state.clips.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    state.clips.sort((a, b) => a.rank - b.rank);
    $("key-form").hidden = true;
    $("editor").hidden = false;
    $("source").src = `${root}/studio/media/videos/${videoId}/source`;
    const wanted = new URLSearchParams(location.hash.slice(1)).get("clip");
    const first = state.clips.find((c) => c.id === wanted) || state.clips[0];
    say(`${state.clips.length} clip${state.clips.length === 1 ? "" : "s"}.`);
    if (first) await select(first.id);
    else renderClips();
  }

  // ---- timeline ----------------------------------------------------------------------
  const pct = (t) => `${(100 * t) / state.duration}%`;

  function timeAt(clientX) {
    const box = $("timeline").getBoundingClientRect();
    const x = Math.min(Math.max(clientX - box.left, 0), box.width);
    return (x / box.width) * state.duration;
  }

  function renderClips() {
    const track = $("track");
    track.replaceChildren();
    const list = $("clips");
    list.replaceChildren();
    for (const clip of state.clips) {
      const name = `Clip ${clip.rank}: ${clip.title || "untitled"}, ${clock(clip.start_s)} to ${clock(clip.end_s)}`;
      const block = el("button", {
        type: "button",
        class: `clip${clip.id === state.selected ? " selected" : ""}`,
        "aria-label": name,
        "data-clip": clip.id,
        tabindex: "-1", // the list below is the keyboard's way to pick a clip
      }, String(clip.rank));
      // CSSOM, not a style attribute: the page's CSP allows no inline styles.
      block.style.left = pct(clip.start_s);
      block.style.width = pct(clip.end_s - clip.start_s);
      block.addEventListener("click", () => run("Select", () => select(clip.id)));
      track.append(block);
      const item = el("li");
      const pick = el("button", {
        type: "button",
        "aria-pressed": String(clip.id === state.selected),
      }, `#${clip.rank} ${clip.title || "Untitled"} (${clock(clip.start_s)}–${clock(clip.end_s)})`);
      if (clip.edited) pick.append(el("span", { class: "tag" }, "edited"));
      pick.addEventListener("click", () => run("Select", () => select(clip.id)));
      item.append(pick);
      list.append(item);
    }
    const clip = selected();
    if (clip) {
      for (const edge of ["start", "end"]) track.append(handle(clip, edge));
    }
    renderBounds();
  }

  function handle(clip, edge) {
    const t = clip[`${edge}_s`];
    const h = el("div", {
      class: `handle ${edge}`,
      role: "slider",
      tabindex: "0",
      "aria-label": `${edge === "start" ? "Start" : "End"} of clip ${clip.rank}`,
      "aria-valuemin": "0",
      "aria-valuemax": state.duration.toFixed(1),
      "aria-valuenow": t.toFixed(1),
      "aria-valuetext": clock(t),
      "data-edge": edge,
    });
    h.style.left = pct(t);
    h.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      h.setPointerCapture(e.pointerId);
      state.drag = { edge, handle: h };
    });
    h.addEventListener("pointermove", (e) => {
      if (state.drag && state.drag.handle === h) preview(edge, timeAt(e.clientX));
    });
    const release = (e) => {
      if (!state.drag || state.drag.handle !== h) return;
      state.drag = null;
      const wanted = clampEdge(edge, timeAt(e.clientX));
      run("Move", () => commit({ [`${edge}_s`]: wanted }));
    };
    h.addEventListener("pointerup", release);
    h.addEventListener("pointercancel", () => {
      state.drag = null;
      renderClips();
    });
    h.addEventListener("keydown", (e) => {
      const dir = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1 }[e.key];
      if (!dir) return;
      e.preventDefault();
      run("Nudge", () => nudge(edge, dir));
    });
    return h;
  }

  function clampEdge(edge, t) {
    const clip = selected();
    const gap = 0.2;
    return edge === "start"
      ? Math.max(0, Math.min(t, clip.end_s - gap))
      : Math.min(state.duration, Math.max(t, clip.start_s + gap));
  }

  function preview(edge, t) {
    const clip = selected();
    const wanted = clampEdge(edge, t);
    const block = $("track").querySelector(`[data-clip="${clip.id}"]`);
    const start = edge === "start" ? wanted : clip.start_s;
    const end = edge === "end" ? wanted : clip.end_s;
    block.style.left = pct(start);
    block.style.width = pct(end - start);
    state.drag.handle.style.left = pct(wanted);
    $("bounds").textContent = `${edge === "start" ? "Start" : "End"} ${clock(wanted)}: release to snap it to the words.`;
  }

  function renderBounds() {
    const clip = selected();
    if (!clip) return;
    const edited = clip.edited && clip.original_start_s != null
      ? ` Detected as ${clock(clip.original_start_s)}–${clock(clip.original_end_s)}.`
      : "";
    $("bounds").textContent =
      `${clock(clip.start_s)} to ${clock(clip.end_s)} (${(clip.end_s - clip.start_s).toFixed(1)} s).${edited}`;
    $("bounds").dataset.start = clip.start_s;
    $("bounds").dataset.end = clip.end_s;
  }

  // ---- edits -------------------------------------------------------------------------
  async function commit(bounds) {
    const clip = selected();
    const before = { start: clip.start_s, end: clip.end_s };
    try {
      const updated = await api("PATCH", `/v1/clips/${clip.id}`, bounds);
      replaceClip(updated);
      await loadWords();
      say(`Snapped to ${clock(updated.start_s)}–${clock(updated.end_s)}.`);
      return { before, after: { start: updated.start_s, end: updated.end_s } };
    } catch (err) {
      renderClips(); // back to the stored bounds
      throw err;
    }
  }

  function nudgeTarget(edge, dir, n) {
    const clip = selected();
    const words = state.words;
    const inside = [];
    words.forEach((w, i) => {
      if (mid(w) >= clip.start_s && mid(w) <= clip.end_s) inside.push(i);
    });
    if (!inside.length) return null;
    const first = inside[0];
    const last = inside[inside.length - 1];
    // Snapping keeps the words whose middle is inside: a start just after a word's end drops
    // that word, a start at a word's start takes it in; ends likewise.
    if (edge === "start") {
      if (dir > 0) return first + n - 1 < last ? words[first + n - 1].end : null;
      return first > 0 ? words[Math.max(0, first - n)].start : null;
    }
    if (dir > 0) return last < words.length - 1 ? words[Math.min(words.length - 1, last + n)].end : null;
    return last - n + 1 > first ? words[last - n + 1].start : null;
  }

  async function nudge(edge, dir) {
    // Snapping may pull an edge back up to two words to reach a pause; a step of three words
    // then always lands somewhere new.
    for (const n of [1, 3]) {
      const target = nudgeTarget(edge, dir, n);
      if (target == null) {
        say(`The ${edge} cannot move ${dir > 0 ? "later" : "earlier"}.`);
        return;
      }
      const moved = await commit({ [`${edge}_s`]: target });
      if (Math.abs(moved.after[edge] - moved.before[edge]) > 0.005) {
        const h = $("track").querySelector(`.handle.${edge}`);
        if (h) h.focus();
        return;
      }
    }
  }

  function replaceClip(clip) {
    state.clips = state.clips.map((c) => (c.id === clip.id ? clip : c));
    renderClips();
  }

  async function loadWords() {
    const data = await api("GET", `/v1/clips/${state.selected}/words`);
    state.clipWords = data.words;
    renderWords();
  }

  function renderWords() {
    const box = $("words");
    box.replaceChildren();
    for (const w of state.clipWords) {
      const input = el("input", {
        type: "text",
        class: `word${w.corrected ? " corrected" : ""}`,
        size: String(Math.max(2, w.text.length)),
        "data-index": String(w.index),
        "aria-label": `Word at ${clock(w.start)}, heard as ${w.heard}`,
        spellcheck: "true",
      });
      input.value = w.text;
      if (w.corrected) input.title = `heard: ${w.heard}`;
      input.addEventListener("change", () => run("Captions", saveWords));
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          input.blur();
        }
      });
      box.append(input);
    }
  }

  async function saveWords() {
    const inputs = Array.from($("words").querySelectorAll("input.word"));
    const heard = new Map(state.clipWords.map((w) => [w.index, w.heard]));
    const corrections = [];
    for (const input of inputs) {
      const index = Number(input.dataset.index);
      const text = input.value.trim();
      if (text && text !== heard.get(index)) corrections.push({ index, text });
    }
    const data = await api("PUT", `/v1/clips/${state.selected}/words`, { words: corrections });
    state.clipWords = data.words;
    renderWords();
    const clip = selected();
    if (clip && !clip.edited) replaceClip({ ...clip, edited: true });
    say(`Captions saved (${corrections.length} correction${corrections.length === 1 ? "" : "s"}).`);
  }

  async function select(clipId) {
    state.selected = clipId;
    const clip = selected();
    $("clip-panel").hidden = false;
    $("clip-h").textContent = `#${clip.rank} ${clip.title || "Untitled clip"}`;
    renderClips();
    await loadWords();
    const page = await api("GET", `/v1/clips/${clipId}/exports?limit=100`);
    $("exports").replaceChildren();
    for (const exp of page.items) {
      showExport(exp);
      if (exp.status === "queued" || exp.status === "rendering") schedulePoll(exp.id);
    }
  }

  // ---- exports -----------------------------------------------------------------------
  function showExport(exp) {
    state.exports.set(exp.id, exp);
    if (exp.clip_id !== state.selected) return;
    let item = $(`export-${exp.id}`);
    if (!item) {
      item = el("li", { id: `export-${exp.id}`, class: "export" });
      $("exports").prepend(item);
    }
    item.dataset.status = exp.status;
    item.replaceChildren();
    item.append(el("span", {}, `${exp.aspect_ratio} · ${exp.caption_style} · ${exp.layout}`));
    const bar = el("progress", { "aria-label": `Export ${exp.aspect_ratio} progress` });
    if (exp.status === "ready" || exp.status === "failed") {
      bar.max = 1;
      bar.value = 1;
    }
    const since = (Date.now() - Date.parse(exp.created_at)) / 1000;
    const words = {
      queued: `queued (${Math.max(0, since).toFixed(0)} s)`,
      rendering: `rendering (${Math.max(0, since).toFixed(0)} s)`,
      ready: `ready: ${exp.duration_s != null ? exp.duration_s.toFixed(1) : "?"} s`,
      failed: `failed: ${exp.error || "unknown error"}`,
    };
    item.append(bar, el("span", { class: "export-status" }, words[exp.status]));
    if (exp.status === "ready" && exp.url) {
      // The API's own download URLs (signed /media/, presigned S3 or the CDN), as any client
      // gets them: the page has no media route of its own for exports.
      const files = [["mp4", "MP4", exp.url]];
      if (exp.caption_urls) {
        files.push(["srt", "SRT", exp.caption_urls.srt], ["vtt", "WebVTT", exp.caption_urls.vtt]);
      }
      const links = el("span", { class: "downloads" });
      for (const [kind, label, href] of files) {
        links.append(el("a", {
          href,
          download: `clip-${exp.id}.${kind}`,
          "aria-label": `Download ${label} of the ${exp.aspect_ratio} export`,
        }, label));
      }
      const player = el("video", {
        controls: "",
        playsinline: "",
        preload: "metadata",
        src: exp.url,
        "aria-label": `The ${exp.aspect_ratio} export`,
      });
      item.append(links, player);
    }
  }

  async function poll(exportId) {
    const exp = await api("GET", `/v1/exports/${exportId}`);
    showExport(exp);
    if (exp.status === "ready") say(`Export ready (${exp.duration_s.toFixed(1)} s).`);
    else if (exp.status === "failed") say(`Export failed: ${exp.error}`, true);
    else schedulePoll(exportId);
  }

  function schedulePoll(exportId) {
    setTimeout(() => poll(exportId).catch((err) => say(err.message, true)), POLL_MS);
  }

  async function exportClip(event) {
    event.preventDefault();
    const form = new FormData($("export-form"));
    const made = await api("POST", `/v1/clips/${state.selected}/exports`, {
      aspect_ratio: form.get("aspect"),
      caption_style: form.get("style"),
      layout: form.get("layout"),
    });
    showExport(made.export);
    say("Export queued.");
    await poll(made.export.id);
  }

  // ---- wiring ------------------------------------------------------------------------
  function playClip() {
    const clip = selected();
    const video = $("source");
    if (!clip) return;
    video.currentTime = clip.start_s;
    video.dataset.stopAt = String(clip.end_s);
    video.play().catch(() => {});
  }

  async function newClip() {
    const t = $("source").currentTime || 0;
    const made = await api("POST", "/v1/clips", {
      video_id: videoId,
      start_s: t,
      end_s: Math.min(state.duration, t + 20),
    });
    state.clips.push(made);
    await select(made.id);
    say(`Clip #${made.rank} made: ${clock(made.start_s)}–${clock(made.end_s)}.`);
  }

  function start() {
    const params = new URLSearchParams(location.hash.slice(1));
    const fromUrl = params.get("key");
    if (fromUrl) {
      params.delete("key"); // out of the address bar and the history
      history.replaceState(null, "", `${location.pathname}${params.toString() ? `#${params}` : ""}`);
    }
    const key = fromUrl || sessionStorage.getItem(STORE);
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      setKey($("key-input").value.trim());
      run("Load", load);
    });
    $("export-form").addEventListener("submit", (e) => run("Export", () => exportClip(e)));
    $("play-clip").addEventListener("click", playClip);
    $("new-clip").addEventListener("click", () => run("New clip", newClip));
    for (const button of document.querySelectorAll("[data-nudge]")) {
      button.addEventListener("click", () =>
        run("Nudge", () => nudge(button.dataset.nudge, Number(button.dataset.dir))),
      );
    }
    const video = $("source");
    video.addEventListener("timeupdate", () => {
      if (state.duration) $("playhead").style.left = pct(video.currentTime);
      const stop = Number(video.dataset.stopAt);
      if (stop && video.currentTime >= stop) {
        video.pause();
        delete video.dataset.stopAt;
      }
    });
    $("timeline").addEventListener("click", (e) => {
      if (e.target === $("timeline") || e.target === $("track")) video.currentTime = timeAt(e.clientX);
    });
    if (key) {
      setKey(key);
      run("Load", load);
    } else {
      askForKey("");
    }
  }

  start();
})();
