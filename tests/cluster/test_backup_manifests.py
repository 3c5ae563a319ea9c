"""cluster/backup/ (scheduled backups, bucket settings, the compose overlay) agrees with the code:
commands parse with the real CLI, environment names are settings, the archive command is the
one `clipforge backup wal-config` prints, and the referenced files exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from typer.core import TyperGroup
from typer.main import get_command

from clipforge.cli import app
from clipforge.ops.pg_backup import archive_command
from clipforge.settings import Settings
from tests.cluster.conftest import CLUSTER

BACKUP = CLUSTER / "backup"
SETTINGS = {name.upper() for name in Settings.model_fields}


def _parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse `clipforge ...` arguments with the real command tree, without running anything;
    the leaf command's parameters."""
    command: Any = get_command(app)  # typer vendors click: a group is a TyperGroup
    ctx = command.make_context("clipforge", list(args))
    while isinstance(command, TyperGroup):
        name, sub, rest = command.resolve_command(
            ctx, [*getattr(ctx, "_protected_args", ()), *ctx.args]
        )
        assert sub is not None, args
        command, ctx = sub, sub.make_context(str(name), rest, parent=ctx)
    assert not ctx.args, f"unparsed arguments {ctx.args}"
    return dict(ctx.params)


def _clipforge_calls(script: str) -> list[list[str]]:
    """Every `clipforge ...` command of a shell snippet (split at && ; and newlines)."""
    calls = []
    for part in re.split(r"&&|;|\n|\bdo\b|\bdone\b", script):
        words = shlex.split(part.replace("$$", "$"))
        if "clipforge" in words:
            calls.append(words[words.index("clipforge") + 1 :])
    return calls


def test_cronjobs_run_real_commands_with_the_shared_config() -> None:
    docs = [d for d in yaml.safe_load_all((BACKUP / "cronjob.yaml").read_text()) if d]
    assert {d["metadata"]["name"] for d in docs} == {"clipforge-backup", "clipforge-backup-base"}
    methods = set()
    for doc in docs:
        assert doc["kind"] == "CronJob" and doc["spec"]["concurrencyPolicy"] == "Forbid"
        pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {"clipforge-config", "clipforge-secrets"}
        assert re.fullmatch(r"ghcr\.io/clipforge/clipforge:[\d.]+-cpu", container["image"])
        command = container["command"]
        script = command[-1] if command[2] == "bash" else shlex.join(command[2:])
        calls = _clipforge_calls(script)
        assert calls and all(call[0] == "backup" for call in calls)
        for call in calls:
            params = _parse_cli(call)
            if call[1] == "create":
                methods.add(params["method"])
                work = {m["mountPath"] for m in container["volumeMounts"]}
                assert str(params["work_dir"]) in work
    assert methods == {"dump", "base"}
    listed = yaml.safe_load((BACKUP / "kustomization.yaml").read_text())["resources"]
    assert listed == ["cronjob.yaml"]


def test_compose_overlay_archives_wal_and_backs_up() -> None:
    overlay = yaml.safe_load((BACKUP / "compose.yaml").read_text())
    base = yaml.safe_load((CLUSTER / "compose.yaml").read_text())
    services = overlay["services"]
    # The overlay only adds to services of the base file (postgres) or defines its own.
    assert set(services) - set(base["services"]) == {
        "wal-archive-init", "minio-backup-init", "backup"
    }  # fmt: skip
    pg_args = services["postgres"]["command"]
    settings = dict(a.split("=", 1) for a in pg_args if "=" in a)
    assert settings["archive_mode"] == "on" and int(settings["archive_timeout"]) <= 60
    assert settings["archive_command"] == archive_command(Path("/wal-archive"))
    for volume in [*services["postgres"]["volumes"], *services["minio-backup-init"]["volumes"]]:
        source = volume.split(":")[0]
        if source.startswith("./"):  # relative to cluster/, the first file's folder
            assert (CLUSTER / source).exists(), volume
    env = services["backup"]["environment"]
    assert set(env) <= SETTINGS
    parsed = Settings(**{k.lower(): v for k, v in env.items()})
    assert parsed.backup_bucket and parsed.backup_bucket != parsed.s3_bucket
    calls = _clipforge_calls(services["backup"]["command"][-1])
    assert [c[:2] for c in calls] == [
        ["backup", "create"], ["backup", "verify"], ["backup", "wal-sync"]
    ]  # fmt: skip
    for call in calls:
        _parse_cli(call)
    init = " ".join(base["services"]["minio-init"]["command"])
    assert "mc version enable local/clipforge-media" in init


def test_bucket_settings_version_and_expire_old_versions() -> None:
    s3 = BACKUP / "s3"
    assert json.loads((s3 / "media-versioning.json").read_text()) == {"Status": "Enabled"}
    for name in ("media-lifecycle.json", "backup-lifecycle.json"):
        rules = json.loads((s3 / name).read_text())["Rules"]
        assert rules and all(r["Status"] == "Enabled" for r in rules)
        assert all(r["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 7 for r in rules)
    replication = json.loads((s3 / "media-replication.json").read_text())
    (rule,) = replication["Rules"]
    # A delete in the media bucket must not delete the replica's copy.
    assert rule["DeleteMarkerReplication"]["Status"] == "Disabled"
    config = next(
        d
        for d in yaml.safe_load_all((CLUSTER / "kuberay" / "config.yaml").read_text())
        if d and d.get("kind") == "ConfigMap"
    )["data"]
    assert config["BACKUP_BUCKET"] != config["S3_BUCKET"]
