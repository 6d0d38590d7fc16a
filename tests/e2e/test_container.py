"""The container image, built and run with podman against the stand-ins on the host network.

Needs root, podman and runc (`.ci/run` installs them), and debootstrap the first time: no
image registry is reachable on these machines, so the base is built from Debian's
packages, imported into podman's image store and kept there (and as a tar under
~/.cache/chatbot-container/) for later runs. The image build reuses its dependency layer
while requirements.txt is unchanged, so a second run takes seconds to build.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from config import load_settings
from conversation.in_flight import SHUTDOWN_NOTICE
from tests.helpers import dotenv_for, free_port, replies
from tests.postgres import postgres_server  # noqa: F401 (a fixture)
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "chatbot-container"
BASE = "localhost/chatbot-base:bookworm"
# One tag per checkout, so that runs in two worktrees at once do not swap images.
IMAGE = f"localhost/chatbot:test-{hashlib.sha256(bytes(REPO)).hexdigest()[:8]}"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STOP_TIMEOUT = 20  # seconds `podman stop` waits before SIGKILL
# podman here needs runc (crun fails on the cgroup setup) and explicit limits.
RUN = ["--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def why_no_podman() -> str | None:
    """Why containers cannot be run here, or None if they can."""
    if os.geteuid() != 0:
        return "the container test runs podman as root (rootless podman is not set up here)"
    missing = [tool for tool in ("podman", "runc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (.ci/run installs them)"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-300:]}"
    return None


def podman_sync(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


def ensure_base() -> None:
    """Put the debootstrapped base into podman's store unless it is there already."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / "base-bookworm.tar"
    with open(CACHE / "lock", "w") as lock:  # parallel runs build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman_sync("image", "exists", BASE).returncode == 0:
            return
        if not tar.exists():
            if shutil.which("debootstrap") is None:
                pytest.skip("debootstrap not installed, and no base image is cached")
            build_base_tar(tar)
        imported = podman_sync("import", str(tar), BASE)
        assert imported.returncode == 0, imported.stderr


def build_base_tar(tar: Path) -> None:
    """Debian bookworm, minimal, with python3, its venv module and the CA certificates."""
    with tempfile.TemporaryDirectory(dir=CACHE) as root:
        built = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
             "bookworm", root],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        partial = tar.with_suffix(".partial")
        subprocess.run(["tar", "-C", root, "-cf", str(partial), "."], check=True, timeout=300)
        partial.rename(tar)


@pytest.fixture(scope="module")
def image() -> str:
    """The bot's image built from this checkout on the cached base."""
    reason = why_no_podman()
    if reason:
        pytest.skip(reason)
    ensure_base()
    mount = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    built = podman_sync(
        "build", "--runtime", "runc", "--format", "docker", *mount,
        "--build-arg", f"BASE={BASE}", "-t", IMAGE, str(REPO),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


async def podman(*args: str, timeout: float = 120) -> tuple[int, str]:
    """Run podman without blocking the stand-ins; its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        "podman", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.fixture
def container() -> Iterator[str]:
    """A name for one container, removed (with its anonymous volume) afterwards."""
    name = f"chatbot-test-{uuid.uuid4().hex[:8]}"
    yield name
    podman_sync("rm", "--force", "--volumes", name, timeout=60)


async def until_ready(url: str, timeout: float) -> None:
    """Wait until `url` answers 200 (connections are refused until the server listens)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)


async def test_the_image_holds_the_bot_only_and_runs_it_as_a_user(image: str) -> None:
    check = (
        "import importlib.util as u, json, os; print(json.dumps([os.getuid(), os.listdir('/app'),"
        " [m for m in ('pytest', 'hypothesis', 'ruff', 'llama_cpp') if u.find_spec(m)]]))"
    )
    code, output = await podman(
        "run", "--rm", *RUN, "--no-healthcheck", image, "python", "-c", check
    )
    assert code == 0, output
    uid, listing, dev_modules = json.loads(output)
    assert uid != 0
    assert {"bot.py", "config.py", "data"} <= set(listing)
    absent = {"tests", "bench", ".env", ".git", ".venv", "requirements-dev.txt", "Makefile"}
    assert absent.isdisjoint(listing)
    assert dev_modules == []  # no test or lint dependencies


async def test_tokens_are_counted_with_no_network(image: str) -> None:
    count = "from text.tokens import load_encoding as e; print(len(e('o200k_base').encode('hi')))"
    code, output = await podman(
        "run", "--rm", *RUN, "--no-healthcheck", "--network", "none", image, "python", "-c", count
    )
    assert code == 0 and output.strip() == "1", output


async def test_the_healthcheck_passes_with_no_port_and_fails_on_a_closed_one(image: str) -> None:
    _, probe = await podman(
        "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", image
    )
    command = json.loads(probe)
    assert command[0] == "CMD"
    base = ["run", "--rm", *RUN, "--no-healthcheck", "--network", "host"]
    code, output = await podman(*base, image, *command[1:])
    assert code == 0, output
    closed = str(free_port())
    code, output = await podman(*base, "-e", f"HEALTH_PORT={closed}", image, *command[1:])
    assert code != 0
    assert "Connection refused" in output


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_the_container_answers_reports_ready_and_stops_cleanly(
    image: str,
    container: str,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    database: str,
) -> None:
    health_port = free_port()
    env = {**dotenv_for(discord_api, openai_api), "HEALTH_PORT": str(health_port)}
    if database == "postgresql":  # as compose.yaml runs it; else the file in /app/data
        env["DATABASE_URL"] = request.getfixturevalue("postgres_server").create_database()
    env_file = tmp_path / "bot.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code, output = await podman(
        "run", "--detach", "--name", container, "--network", "host", *RUN,
        "--health-interval", "disable",  # no systemd here to time it; run by hand below
        "--env-file", str(env_file), image,
    )  # fmt: skip
    assert code == 0, output
    await discord_api.wait_until_ready(timeout=60)

    openai_api.script(Reply("Hi from a container"))
    await discord_api.user_says("general", "alice", "hello?")
    [answer] = await replies(discord_api, "general")
    assert answer["content"] == "Hi from a container"

    await until_ready(f"http://127.0.0.1:{health_port}/readyz", timeout=30)
    code, output = await podman("healthcheck", "run", container)
    assert code == 0, output

    # Stopped while answering: the answer is closed off with a notice, as Ctrl+C does.
    openai_api.script(Reply("too late", delay=60))
    await discord_api.user_says("general", "alice", "a slow question")
    await openai_api.wait_for_requests(2)
    loop = asyncio.get_running_loop()
    stopping = loop.time()
    code, output = await podman("stop", "--time", str(STOP_TIMEOUT), container)
    assert code == 0, output
    assert loop.time() - stopping < STOP_TIMEOUT  # by the bot's own exit, not SIGKILL
    _, exit_code = await podman("inspect", "--format", "{{.State.ExitCode}}", container)
    _, logs = await podman("logs", container)
    assert exit_code.strip() == "0", logs
    assert "Traceback" not in logs
    assert discord_api.bot_token not in logs
    [_, notice] = discord_api.bot_messages("general")
    assert notice["content"] == SHUTDOWN_NOTICE
    await discord_api.wait_for(lambda: not discord_api.connected, timeout=5)


def test_compose_gives_the_bot_settings_it_accepts() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    bot, postgres = compose["services"]["bot"], compose["services"]["postgres"]
    env = {
        k: re.sub(r"\$\{POSTGRES_PASSWORD[^}]*\}", "pw", v) for k, v in bot["environment"].items()
    }
    settings = load_settings({"DISCORD_BOT_TOKEN": "t", "OPENAI_API_KEY": "k", **env})
    pg = postgres["environment"]
    assert (
        settings.database_url
        == f"postgresql://{pg['POSTGRES_USER']}:pw@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert settings.health_host == "0.0.0.0"
    # Liveness, not readiness: a waiting spare (--scale bot=2) is healthy.
    assert f"127.0.0.1:{settings.health_port}/healthz" in " ".join(bot["healthcheck"]["test"])
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert postgres["volumes"][0].split(":")[0] in compose["volumes"]
