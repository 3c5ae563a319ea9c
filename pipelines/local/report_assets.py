"""Static parts of `report.html`: the score explanations, the stylesheet and the script.

Kept apart from the markup builders so `report.py` reads as page structure. The script needs
no library and no network: copy buttons, caption-track toggles, transcript lines that seek
the source preview, and the transcript line under the playhead highlighted.
"""

from __future__ import annotations

#: What the 0-100 score means, shown above the clips.
SCORE_HELP = (
    "Each clip's score (0-100) is the weighted mean of the other sub-scores (each 0-1, shown "
    "here as 0-100), averaged half and half with a full mark and then multiplied by Content: "
    "procedural speech such as menus stays low however lively, and the other signals order "
    "the quotable moments. Scores rank the moments of this one video against each other; they do "
    "not predict views and do not compare across videos. Sub-scores missing for a clip were not "
    "available for this input (no audio track, no frames)."
)

#: Every sub-score the scorer can produce, in the scorer's order, with what a high value means.
SUBSCORE_HELP: dict[str, tuple[str, str]] = {
    "content": ("Content", "a quotable statement (claim, advice, story, punchline), not a menu"),
    "hook": ("Hook", "the opening sounds like a strong hook, asks a question or states a number"),
    "payoff": ("Payoff", "the end lands a conclusion or punchline"),
    "standalone": ("Stands alone", "makes sense without what came before or after"),
    "emotion": ("Emotion", "emotional words and exclamations per 100 words"),
    "question": ("Question", "opens with, or contains, a question"),
    "numbers": ("Numbers", "concrete numbers, above all in the opening"),
    "speech_rate": ("Pace", "words per second: lively, not slow"),
    "flow": ("Flow", "share of the time without long pauses (low = long silences)"),
    "energy": ("Energy", "louder and more dynamic than the rest of the recording"),
    "reactions": ("Reactions", "bursts of laughter or applause"),
    "scene_cuts": ("Scene cuts", "cuts between shots, per 30 seconds"),
    "motion": ("Motion", "movement in the frames"),
}

#: The crop layouts of `clipforge.types.Layout` as a creator would say them.
LAYOUT_WORDS: dict[str, str] = {
    "auto": "follows whoever is speaking (two stacked shots when two people alternate)",
    "speaker": "follows the person speaking",
    "split": "two people stacked, one above the other",
    "center": "centre of the picture",
}

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,sans-serif;line-height:1.45;max-width:1100px;
margin:auto;padding:12px;color:#222;background:#fff}
h1{font-size:1.5em;margin:.3em 0}h2{margin-top:1.4em}
a{color:#0b57d0}
.meta,.muted{color:#555;font-size:.9em}
.tl{margin:.5em 0 1em}
.tl .legend{display:flex;flex-wrap:wrap;gap:2px 16px;list-style:none;padding:0;margin:0 0 6px;
font-size:.85em;color:#444}
.key{display:inline-block;width:16px;height:10px;margin-right:6px;vertical-align:middle}
.key-line{height:0;border-top:2px solid #1565c0}
.key-clip{background:rgba(255,193,7,.55);border:1px solid #c79100}
.key-failed{background:rgba(158,158,158,.6);border:1px solid #757575}
.tl-body{display:grid;grid-template-columns:2.2em minmax(0,1fr);font-size:12px;color:#555}
.yaxis{position:relative}
.yaxis span{position:absolute;right:6px;transform:translateY(-50%);line-height:1}
.plot{position:relative;height:160px;border-left:1px solid #555;border-bottom:1px solid #555}
/* the score line over the clip shading, the clip labels over the line */
.plot svg{position:absolute;inset:0;width:100%;height:100%;overflow:visible;z-index:1;
pointer-events:none}
.plot .grid{stroke:#e0e0e0;stroke-width:1}
.plot .score{fill:none;stroke:#1565c0;stroke-width:2}
.marker{position:absolute;top:0;bottom:0;min-width:3px;background:rgba(255,193,7,.45);
border-left:1px solid #c79100;border-right:1px solid #c79100;color:#222;text-decoration:none}
.marker.failed{background:rgba(158,158,158,.5);border-color:#757575}
.marker span{position:absolute;left:0;white-space:nowrap;font-weight:700;font-size:12px;
background:#fff;border:1px solid currentColor;border-radius:3px;padding:0 3px;line-height:1.4;
z-index:2}
.marker.end span{left:auto;right:0}
.marker .row0{top:2px}.marker .row1{top:22px}.marker .row2{top:42px}
.marker:hover,.marker:focus-visible{background:rgba(255,193,7,.75)}
.ticks{grid-column:2;position:relative;height:1.6em}
.tick{position:absolute;top:4px;transform:translateX(-50%);white-space:nowrap}
.tick.first{transform:none}.tick.last{transform:translateX(-100%)}
.clips{display:grid;gap:16px;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr))}
.clip{border:1px solid #ddd;border-radius:8px;padding:10px}
.clip h3{margin:.4em 0;font-size:1.1em}
.clip video{width:100%;max-height:60vh;background:#000;display:block}
.clip.failed{border-color:#e0a0a0;background:#fff7f7}
.copyrow{display:flex;gap:8px;align-items:flex-start;margin:.3em 0}
.copyrow .text{flex:1;min-width:0;overflow-wrap:anywhere}
.copyrow .lbl{font-weight:600;min-width:3.2em}
button{font:inherit;cursor:pointer;border:1px solid #888;border-radius:6px;background:#f4f4f4;
padding:4px 10px;min-height:32px}
button:focus-visible,a:focus-visible,video:focus-visible{outline:3px solid #0b57d0;
outline-offset:2px}
.subs{list-style:none;padding:0;margin:.5em 0;font-size:.85em}
.subs li{display:grid;grid-template-columns:6.5em 1fr 2.4em;gap:6px;align-items:center}
.bar{background:#eee;height:10px;border-radius:5px;overflow:hidden}
.bar i{display:block;height:100%;background:#1565c0}
.val{text-align:right;font-variant-numeric:tabular-nums}
.cc-row{display:flex;flex-wrap:wrap;gap:4px 10px;align-items:center;margin:.4em 0}
.cc-row .muted{font-size:.8em}
button.cc[aria-pressed=true]{background:#0b57d0;color:#fff;border-color:#0b57d0}
.downloads{display:flex;flex-wrap:wrap;gap:6px 12px;padding:0;list-style:none;margin:.5em 0}
.source video{width:100%;max-height:40vh;background:#000}
.source{position:sticky;top:0;background:#fff;padding-bottom:6px;z-index:1}
.transcript{max-height:70vh;overflow-y:auto}
.seg{display:block;width:100%;text-align:left;border:0;border-radius:4px;background:none;
padding:4px 6px;margin:1px 0}
.seg:hover{background:#f0f4ff}.seg.now{background:#fff3c4}
.seg.turn,.transcript p.turn{margin-top:10px}
.transcript p{margin:2px 0;padding:4px 6px}
.t{font-family:ui-monospace,monospace;color:#555;margin-right:.2em}
.spk{font-weight:700;color:#222;border-left:5px solid var(--spk);padding-left:5px;
margin-right:.2em;white-space:nowrap}
dl.help dt{font-weight:600}dl.help dd{margin:0 0 .4em 1em}
.toast{position:fixed;bottom:12px;left:50%;transform:translateX(-50%);max-width:90vw;
background:#222;color:#fff;padding:6px 12px;border-radius:6px;z-index:3}.toast:empty{display:none}
@media (max-width:600px){body{padding:8px}.source{position:static}.plot{height:120px}
.ticks .tick:nth-child(2n){display:none}}
"""

# `navigator.clipboard` needs a secure context and permission; the textarea + execCommand path
# covers browsers that refuse it for file:// pages, and selecting the text is the last resort.
JS = """
(function(){
  var status=document.getElementById('status');
  var timer=null;
  function say(msg){status.textContent='';clearTimeout(timer);
    setTimeout(function(){status.textContent=msg;},30);
    timer=setTimeout(function(){status.textContent='';},4000);}
  function fallback(text){
    var ta=document.createElement('textarea');ta.value=text;ta.setAttribute('readonly','');
    ta.style.position='fixed';ta.style.opacity='0';document.body.appendChild(ta);ta.select();
    var ok=false;try{ok=document.execCommand('copy');}catch(e){ok=false;}
    document.body.removeChild(ta);return ok;
  }
  function selectText(el){var r=document.createRange();r.selectNodeContents(el);
    var s=window.getSelection();s.removeAllRanges();s.addRange(r);}
  document.querySelectorAll('button[data-copy]').forEach(function(btn){
    btn.addEventListener('click',function(){
      var el=document.getElementById(btn.getAttribute('data-copy'));var text=el.textContent;
      var done=function(){say('Copied: '+text);};
      var fail=function(){if(fallback(text)){done();}else{selectText(el);
        say('Copy blocked by the browser: the text is selected, press Ctrl+C');}};
      if(navigator.clipboard&&window.isSecureContext){
        navigator.clipboard.writeText(text).then(done,fail);}else{fail();}
    });
  });
  // Caption tracks start hidden (loaded, not drawn): the clips carry burned captions and a
  // drawn track would be a second layer the exported file does not have.
  document.querySelectorAll('video').forEach(function(v){
    for(var i=0;i<v.textTracks.length;i++){v.textTracks[i].mode='hidden';}
  });
  document.querySelectorAll('button.cc').forEach(function(btn){
    var video=document.getElementById(btn.getAttribute('data-video'));
    var what=btn.getAttribute('data-what');
    function sync(){var on=video.textTracks.length>0&&video.textTracks[0].mode==='showing';
      btn.setAttribute('aria-pressed',on?'true':'false');
      btn.textContent=(on?'Hide ':'Show ')+what;}
    btn.addEventListener('click',function(){
      if(!video.textTracks.length){return;}
      var t=video.textTracks[0];t.mode=t.mode==='showing'?'hidden':'showing';sync();
    });
    // the player's own captions menu changes the same track
    video.textTracks.addEventListener('change',sync);
  });
  var source=document.getElementById('source-video');
  var segs=Array.prototype.slice.call(document.querySelectorAll('button.seg'));
  if(!source){return;}
  segs.forEach(function(seg){
    seg.addEventListener('click',function(){
      source.currentTime=parseFloat(seg.getAttribute('data-start'));
      var p=source.play();if(p&&p.catch){p.catch(function(){});}
    });
  });
  source.addEventListener('timeupdate',function(){
    var t=source.currentTime;
    segs.forEach(function(seg){
      var on=t>=parseFloat(seg.getAttribute('data-start'))&&t<parseFloat(seg.getAttribute('data-end'));
      seg.classList.toggle('now',on);
    });
  });
})();
"""
