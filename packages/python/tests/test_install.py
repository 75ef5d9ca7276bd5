"""A fresh Python environment installs packages/python (`pip install`, as docs/python.md says) and runs a
program written from docs/python.md against the node. The environment sees the interpreter's own
packages (websockets) and pip works offline (`--no-index`): no package index is reachable here."""
import os
import shutil
import subprocess
import sys
import textwrap

from conftest import URL, mint, unique

PACKAGE = os.path.join(os.path.dirname(__file__), "..")

PROGRAM = textwrap.dedent('''
    import asyncio, sys
    from apix import Client, ForbiddenError

    async def main(url, token, channel):
        got = []
        async with Client(url, token) as client:
            def on_event(event):
                if event.stream is None:  # stream frames come with event.stream set
                    got.append(event.payload["status"])

            await client.subscribe(channel, on_event)
            await client.publish(channel, "agent_status_update", {"agentId": "a1", "status": "running"},
                                 idempotency_key="step-1")
            await client.publish_http(channel, "agent_status_update", {"agentId": "a1", "status": "idle"})
            async with client.stream(channel, event_type="agent_message") as stream:
                for token in ["Hel", "lo"]:
                    await stream.append(token)
            while len(got) < 2:
                await asyncio.sleep(0.02)
            page = await client.history(channel)
            print(got, [e["type"] for e in page["events"]], page["events"][-1]["payload"]["text"])

    asyncio.run(main(*sys.argv[1:]))
''')


def test_pip_install_into_a_fresh_environment_then_a_program_from_the_docs_runs(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "--no-index", "--no-build-isolation", str(src)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    (tmp_path / "agent.py").write_text(PROGRAM)
    out = subprocess.run([py, "agent.py", URL, mint(), unique("agent:inst")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "['running', 'idle'] ['agent_status_update', 'agent_status_update', " \
                                 "'agent_message'] Hello"
    where = subprocess.run([py, "-c", "import apix; print(apix.__file__)"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert str(venv) in where.stdout  # the installed copy, not the checkout
