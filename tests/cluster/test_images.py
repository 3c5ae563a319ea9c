"""The Dockerfiles refer only to files that exist, install the project as bootstrap.sh does,
and follow the image rules (multi-stage, pinned base, non-root, healthcheck, offline models)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from clipforge.cli import app
from tests.cluster.conftest import CLUSTER, REPO

DOCKERFILES = sorted(
    p for p in (CLUSTER / "docker").glob("Dockerfile.*") if p.suffix != ".dockerignore"
)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _torch_pin() -> str:
    deps: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    return next(d for d in deps if d.startswith("torch=="))


def _included(path: str, ignore: Path) -> bool:
    """Whether a whitelist-style .dockerignore (`*` then `!path` lines) sends `path`."""
    allowed = [ln[1:].rstrip("/") for ln in ignore.read_text().splitlines() if ln.startswith("!")]
    return any(path == a or path.startswith(a + "/") or fnmatch.fnmatch(path, a) for a in allowed)


def test_both_images_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.exists()
    copies = [args for word, args in instructions(dockerfile) if word == "COPY"]
    assert copies
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        if "--from=" in args:
            continue
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such file"
            assert _included(source.rstrip("/"), ignore), f"{source} is excluded by {ignore.name}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_the_project_like_bootstrap(dockerfile: Path) -> None:
    runs = " ".join(args for word, args in instructions(dockerfile) if word == "RUN")
    assert re.search(r"pip install \. ", runs), "the project must be pip-installed from its root"
    assert f'"{_torch_pin()}"' in runs, f"torch must be pinned as in pyproject ({_torch_pin()})"
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert "pip install -q --no-compile -e '.[dev]'" in bootstrap  # the README's, compiled after
    assert "compileall" in bootstrap
    assert "python /tmp/verify_models.py" in runs  # weights are present and load offline


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_rules(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    words = [w for w, _ in steps]
    args = dict(a.split("=", 1) for w, a in steps if w == "ARG" and "=" in a)
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base  # pinned to a patch tag
    assert words.count("FROM") >= 2 and any("--from=build" in a for w, a in steps if w == "COPY")
    user = [a for w, a in steps if w == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert words.index("USER") > words.index(
        "FROM", words.index("FROM") + 1
    )  # in the runtime stage
    assert "HEALTHCHECK" in words
    env = " ".join(a for w, a in steps if w == "ENV")
    assert "HF_HUB_OFFLINE=1" in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_default_command_is_a_real_cli_command(dockerfile: Path) -> None:
    cmd = next(a for w, a in instructions(dockerfile) if w == "CMD")
    argv = json.loads(cmd)
    commands = {c.name for c in app.registered_commands}
    assert argv[0] == "clipforge" and argv[1] in commands
    if "--config" in argv:
        config = argv[argv.index("--config") + 1]
        assert config.startswith("/app/configs/")
        assert (REPO / "configs" / Path(config).name).exists()


def test_healthcheck_default_is_the_api_health_endpoint() -> None:
    text = (CLUSTER / "docker" / "healthcheck.py").read_text()
    assert 'DEFAULT_URL = "http://127.0.0.1:8080/health"' in text
    cpu = (CLUSTER / "docker" / "Dockerfile.cpu").read_text()
    assert '"--port", "8080"' in cpu
