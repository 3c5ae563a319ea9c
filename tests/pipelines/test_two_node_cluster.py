"""The queue worker and a backfill Ray job on a two-node local Ray cluster, and the worker under
a node loss (the Ray Data backfill under a node loss: test_two_node_data_backfill.py).

A head (with the job server) and a second raylet, 1 CPU each, started with `ray start`; the
stage actors ask for 2 CPUs together, so they cannot all live on one node. Media are in the
S3-compatible test server, so every node reads and writes the same objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clipforge.db.migrate import migrate
from clipforge.db.pool import Pool, create_pool
from clipforge.settings import Settings
from models.highlight_config import ScorerConfig
from pipelines.config import load_pipeline_config
from pipelines.stages.detect import scorer_digest
from tests.conftest import temporary_database
from tests.notebooks.conftest import s3_env
from tests.pipelines.conftest import upload_video
from tests.utils.ray_cluster import LocalCluster, local_cluster
from tests.utils.wait import wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TUNED = "configs/scorers/highlight-tuned.yaml"  # relative: read from the job's working dir
STAGE_ACTORS = {"ImportActor", "AsrActor", "DetectActor", "ExportActor"}


def _actor_nodes(cluster: LocalCluster) -> dict[str, set[str]]:
    """Stage actor class -> ids of the nodes its actors ran on (dead ones included)."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=cluster.dashboard_url, limit=1000, timeout=20, raise_on_missing_output=False
    )
    nodes: dict[str, set[str]] = {}
    for actor in actors:
        if actor.class_name in STAGE_ACTORS and actor.node_id:
            nodes.setdefault(actor.class_name, set()).add(actor.node_id)
    return nodes


def _run(cmd: list[str], env: dict[str, str], timeout_s: float) -> str:
    try:
        done = subprocess.run(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # what it was doing, not only that it took long
        tail = (exc.output or b"").decode(errors="replace")[-6000:]
        pytest.fail(f"{cmd[:4]} still ran after {timeout_s} s:\n{tail}")
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, f"{cmd[:4]} exited {done.returncode}:\n{out[-6000:]}"
    return out


def _write_config(tmp_path: Path, *, stage_cpus: float, **overrides: object) -> Path:
    """A scaled-down pipeline config (every node shares this machine's files)."""
    values: dict[str, object] = {
        "worker__idle_poll_s": 0.2,
        "import__num_cpus": stage_cpus,
        "transcribe__asr_actors": 1,
        "transcribe__asr_num_cpus": stage_cpus,
        "detect__num_cpus": stage_cpus,
        "detect__top_k": 2,
        "export__short_side": 240,
        "export__num_cpus": stage_cpus,
        # Each stage's own processes: these tests place the stages' actors one by one (sharing
        # import and export: test_shared_pool.py, test_two_node_scale_out.py).
        "worker__shared_pools": [],
    }
    return load_pipeline_config(**(values | overrides)).save(tmp_path / "pipeline.yaml")


def _app_env(
    database_url: str, redis_url: str, settings: Settings, tmp_path: Path
) -> dict[str, str]:
    """What the cluster's nodes, the worker and the Ray job run with."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "test",
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **s3_env(settings),
    }


@dataclass
class TwoNodes:
    """The module's cluster and the database its worker and jobs use."""

    cluster: LocalCluster
    pool: Pool
    settings: Settings
    app_env: dict[str, str]

    def upload(self, path: Path, count: int) -> list[str]:
        """`count` uploaded videos of `path` (each with its import job); their sorted ids."""
        return sorted(str(upload_video(self.pool, self.settings, path).id) for _ in range(count))


@pytest.fixture(scope="module")
def two_nodes(
    admin_database_url: str,
    pipeline_settings: Settings,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TwoNodes]:
    """One two-node cluster for the module (its start is most of a minute on 2 cores) and a
    migrated database of its own. The node-loss test kills the second node: it runs last."""
    tmp_path = tmp_path_factory.mktemp("two-node")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(temporary_database(admin_database_url))
        migrate(url)
        app_env = _app_env(url, redis_url, pipeline_settings, tmp_path)
        settings = pipeline_settings.model_copy(update={"database_url": url})
        pool = stack.enter_context(
            create_pool(settings, url, application_name="two-node", max_size=2)
        )
        cluster = stack.enter_context(local_cluster(os.environ | app_env, nodes=2, cpus_per_node=1))
        yield TwoNodes(cluster, pool, settings, app_env)


@pytest.mark.timeout(480)
def test_worker_and_backfill_job_on_two_nodes(
    two_nodes: TwoNodes, test_media: dict[str, Path], tmp_path: Path
) -> None:
    # 0.5 CPU per stage, 2 in all: with 1 CPU per node the actors cannot all fit on one node.
    config_path = _write_config(tmp_path, stage_cpus=0.5)
    cluster, pool, app_env = two_nodes.cluster, two_nodes.pool, two_nodes.app_env
    # The module's first test: its videos are the only ones (the backfill below takes them all).
    ids = two_nodes.upload(test_media["speech_short"], 3)
    assert _statuses(pool).keys() == set(ids)
    # 1. The queue worker, a driver of the cluster, runs every stage to the end.
    worker_env = cluster.env | {"RAY_ADDRESS": cluster.address}
    clipforge = str(Path(sys.executable).with_name("clipforge"))
    cmd = [clipforge, "worker", "--until-idle", "--metrics-port", "0"]
    # Bounds for a hang: ~25 s each on a quiet machine, 115-120 s+ beside the rest of the suite.
    _run([*cmd, "--config", str(config_path)], worker_env, timeout_s=240)
    assert _statuses(pool) == dict.fromkeys(ids, "ready")
    nodes = _actor_nodes(cluster)
    # No export was queued, so no export actor started (pools start with work).
    assert set(nodes) == STAGE_ACTORS - {"ExportActor"}, nodes
    assert len(set().union(*nodes.values())) == 2, nodes  # both nodes ran stage actors

    # 2. A detect backfill, submitted as a Ray job with the repository as working dir.
    runtime_env = {
        "env_vars": app_env,
        "excludes": [".git", ".venv", ".cache", "*.egg-info", "tmp", "notebooks"],
    }
    submission = f"backfill-two-node-{uuid.uuid4().hex[:8]}"
    submit = [
        str(Path(sys.executable).with_name("ray")),
        *("job", "submit", "--address", cluster.dashboard_url),
        *("--submission-id", submission, "--working-dir", "."),
        *("--runtime-env-json", json.dumps(runtime_env), "--"),
        *("python", "-m", "pipelines.batch.backfill", "--stage", "detect", "--force"),
        *("--run-id", "two-node", "--scorer-config", TUNED, "--config", str(config_path)),
    ]
    out = _run(submit, cluster.env, timeout_s=180)
    from ray.job_submission import JobStatus, JobSubmissionClient

    status = JobSubmissionClient(cluster.dashboard_url).get_job_status(submission)
    assert status == JobStatus.SUCCEEDED, out[-6000:]
    summary = json.loads(next(x for x in reversed(out.splitlines()) if '"unfinished"' in x))
    assert (summary["succeeded"], summary["failed"], summary["unfinished"]) == (3, 0, 0)

    tuned = ScorerConfig.load(REPO / TUNED)
    with pool.connection() as conn:
        jobs = conn.execute(
            "SELECT video_id::text AS v, state FROM jobs WHERE run_id = 'two-node'"
        ).fetchall()
        clips = conn.execute(
            "SELECT video_id::text AS v, model_version FROM clips ORDER BY video_id"
        ).fetchall()
    assert sorted((r["v"], r["state"]) for r in jobs) == [(i, "succeeded") for i in ids]
    assert sorted({r["v"] for r in clips}) == ids
    for row in clips:
        version = row["model_version"].split("+")
        assert (version[0], version[-1]) == (tuned.version, scorer_digest(tuned)), row
    assert _statuses(pool) == dict.fromkeys(ids, "ready")


def _statuses(pool: Pool) -> dict[str, str]:
    with pool.connection() as conn:
        rows = conn.execute("SELECT id::text AS id, status FROM videos").fetchall()
    return {r["id"]: r["status"] for r in rows}


def _jobs(pool: Pool) -> list[dict[str, object]]:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT id, kind, video_id::text AS v, state, attempts, last_error FROM jobs ORDER BY id"
        ).fetchall()


def _asr_nodes(cluster: LocalCluster) -> set[str]:
    """Ids of the nodes an AsrActor is alive on now."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=cluster.dashboard_url, limit=1000, timeout=10, raise_on_missing_output=False
    )
    return {a.node_id for a in actors if a.class_name == "AsrActor" and a.state == "ALIVE"}


def _second_node_id(cluster: LocalCluster) -> str:
    from ray.util.state import list_nodes

    nodes = list_nodes(address=cluster.dashboard_url, timeout=10, raise_on_missing_output=False)
    return next(n.node_id for n in nodes if n.state == "ALIVE" and not n.is_head_node)


# docs/operations.md states it: a lost node's videos end ready within it. 19-28 s on a quiet
# machine, 51 s beside three busy loops; over 150 s once in CI beside the rest of the suite,
# while the actors ran at Ray's nice 15 (local_cluster now starts them at 0).
RECOVERY_BOUND_S = 240


@pytest.mark.timeout(420)
def test_second_node_killed_mid_transcribe(
    two_nodes: TwoNodes, test_media: dict[str, Path], tmp_path: Path
) -> None:
    """SIGKILL the second node while a transcribe job runs: every video still ends ready, once.

    The stage actors ask for 1 CPU together, so after the loss they all fit on the head: the
    lost ones restart there and the call in flight is retried (max_task_retries=1).
    """
    # 1 CPU in all for the stages that run: after the loss every actor fits on the head. The default
    # max_attempts: a lost node is a cluster outage, which must not spend the job's attempts
    # (the call in flight fails "actor unavailable" until Ray declares the node dead).
    # Import takes half the head (0.5 CPU) and the ASR actor is asked for only once a video
    # is imported (no warming of the next stage), so Ray places it on the second node; no
    # export is queued, so no export actor starts.
    config_path = _write_config(
        tmp_path, stage_cpus=0.25, import__num_cpus=0.5, worker__warm_next_stage=False
    )
    cluster, pool = two_nodes.cluster, two_nodes.pool
    # Videos of the test before it are in the database too, all done: only these are checked.
    ids = two_nodes.upload(test_media["speech_short"], 3)

    def statuses() -> dict[str, str]:
        return {k: v for k, v in _statuses(pool).items() if k in ids}

    def jobs() -> list[dict[str, object]]:
        return [j for j in _jobs(pool) if j["v"] in ids]

    worker_env = cluster.env | {
        "RAY_ADDRESS": cluster.address,
        # A job whose actor sits on the lost node is delayed again and again until Ray declares
        # the node dead, each delay twice the last (capped at 300 s by default): the cap scaled
        # down, so the wait after the restart is not a leftover delay of up to a minute.
        "QUEUE_DEPENDENCY_BACKOFF_MAX_S": "4",
        # Beside the rest of the suite a stage batch alone can take a minute: a tighter stage
        # timeout restarts the actors mid-recovery (seen with 60 s), which loads Whisper again.
        "STAGE_TIMEOUT_S": str(RECOVERY_BOUND_S),
    }
    clipforge = str(Path(sys.executable).with_name("clipforge"))
    cmd = [clipforge, "worker", "--metrics-port", "0", "--config", str(config_path)]
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            cmd, cwd=REPO, env=worker_env, stdout=log, stderr=subprocess.STDOUT
        )

    def transcribing() -> bool:
        assert worker.poll() is None, log_path.read_text()[-6000:]
        running = any(j["kind"] == "transcribe" and j["state"] == "running" for j in jobs())
        return running and bool(_asr_nodes(cluster))

    def all_ready() -> bool:
        assert worker.poll() is None, log_path.read_text()[-6000:]
        return statuses() == dict.fromkeys(ids, "ready")

    try:
        wait_until(
            transcribing,
            timeout_s=90,
            interval_s=0.1,
            what=lambda: (jobs(), log_path.read_text()[-6000:]),
        )
        second = _second_node_id(cluster)
        # Import fills the head to half its CPUs; Ray's scheduler then places the ASR
        # actor on the second node.
        assert _asr_nodes(cluster) == {second}, (_actor_nodes(cluster), second)
        killed = cluster.kill_node(1)
        killed_at = time.monotonic()
        wait_until(
            all_ready,
            timeout_s=RECOVERY_BOUND_S,
            interval_s=0.2,
            what=lambda: (statuses(), jobs(), log_path.read_text()[-6000:]),
        )
        recovery_s = time.monotonic() - killed_at
        print(f"killed {killed} processes; every video ready {recovery_s:.1f} s later")
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait(timeout=10)
    assert code == 0, log_path.read_text()[-6000:]

    done = jobs()
    assert all(j["state"] == "succeeded" for j in done), done
    # Waiting out the lost node spent no attempt (it took 3-4 before "actor unavailable"
    # counted as an outage); one spare allows for the call that sees the actor declared dead.
    assert all(j["attempts"] <= 2 for j in done), [(j["kind"], j["attempts"]) for j in done]
    with pool.connection() as conn:
        transcripts = conn.execute(
            "SELECT video_id::text AS v FROM transcripts ORDER BY video_id"
        ).fetchall()
        clips = conn.execute("SELECT DISTINCT video_id::text AS v FROM clips").fetchall()
    assert [r["v"] for r in transcripts if r["v"] in ids] == ids
    assert sorted(r["v"] for r in clips if r["v"] in ids) == ids
    assert statuses() == dict.fromkeys(ids, "ready")
