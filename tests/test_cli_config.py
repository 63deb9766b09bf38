"""Profiles (the config file), environment variables, shell completion and the man page, through
the real ``hvjob`` command in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_PASSWORD, job_id
from hvjob.testing import FakeWinRMServer
from test_cli import HVJOB, host

#: A keyring backend for the tests, loaded by keyring through PYTHON_KEYRING_BACKEND (its public
#: way of choosing a backend): passwords from a JSON file the test writes.
KEYRING_BACKEND = """
import json, os
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

class FileKeyring(KeyringBackend):
    priority = 1

    def _load(self):
        return json.load(open(os.environ["TEST_KEYRING_FILE"]))

    def _save(self, store):
        json.dump(store, open(os.environ["TEST_KEYRING_FILE"], "w"))

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def set_password(self, service, username, password):
        self._save({**self._load(), f"{service}/{username}": password})

    def delete_password(self, service, username):
        store = self._load()
        if store.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError(f"no password for {username} in {service}")
        self._save(store)
"""


def run(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """hvjob with ``home`` as its XDG config home and no HVJOB_ variable of the caller."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HVJOB_")}
    clean.update({"XDG_CONFIG_HOME": str(home), **(env or {})})
    proc = subprocess.run([*HVJOB, *args], capture_output=True, text=True, env=clean, timeout=timeout)
    assert CANARY_PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / "hvjob" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def settings(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run(home, *args, "--output", "json", "config", "show", env=env)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "config-home"


def test_precedence_command_line_environment_profile_default(home: Path) -> None:
    path = write_config(
        home,
        "[default]\nusername = 'CONTOSO\\admin'\nscheme = \"http\"\nport = 1111\nconcurrency = 5\n"
        '[profile.lab]\nport = 2222\nconcurrency = 6\ncluster_domain = "lab.test"\n',
    )
    doc = settings(home, "--profile", "lab", "--concurrency", "8", env={"HVJOB_PORT": "3333"})
    got = {name: (entry["value"], entry["origin"]) for name, entry in doc["settings"].items()}
    assert got["username"] == ("CONTOSO\\admin", f"{path} [default]")
    assert got["scheme"] == ("http", f"{path} [default]")
    assert got["cluster-domain"] == ("lab.test", f"{path} [profile.lab]")
    assert got["port"] == (3333, "environment HVJOB_PORT")  # environment over profile
    assert got["concurrency"] == (8, "command line")  # command line over everything
    assert got["transport"] == ("ntlm", "default")
    assert doc["profile"] == "lab" and doc["config_file"] == str(path)
    assert settings(home, env={"HVJOB_PROFILE": "lab"})["settings"]["port"]["value"] == 2222


def test_an_unset_port_shows_the_one_the_scheme_gives(home: Path) -> None:
    assert settings(home)["settings"]["port"] == {"value": 5986, "origin": "default, for --scheme https"}
    assert settings(home, "--scheme", "http")["settings"]["port"] == {
        "value": 5985,
        "origin": "default, for --scheme http",
    }


def test_every_global_option_has_an_environment_variable(home: Path) -> None:
    doc = settings(home, env={"HVJOB_SCHEME": "http", "HVJOB_CA_TRUST": "/etc/ca.pem", "HVJOB_INSECURE": "1",
                              "HVJOB_OPERATION_TIMEOUT": "7", "HVJOB_CLUSTER_DOMAIN": "x.test"})  # fmt: skip
    values = {name: entry["value"] for name, entry in doc["settings"].items()}
    assert (values["scheme"], values["ca-trust"], values["insecure"]) == ("http", "/etc/ca.pem", True)
    assert (values["operation-timeout"], values["cluster-domain"]) == (7.0, "x.test")
    assert doc["settings"]["ca-trust"]["origin"] == "environment HVJOB_CA_TRUST"


def test_a_profile_connects_with_its_password_command(home: Path, http_server: FakeWinRMServer, tmp_path: Path) -> None:
    secret = tmp_path / "lab-password.txt"  # a credential store: the canary scan allows it here only
    secret.write_text(CANARY_PASSWORD + "\n")
    write_config(
        home,
        f'[profile.lab]\nusername = "alice"\nscheme = "http"\npassword_command = "cat {secret}"\n'
        f'hosts = ["{host(http_server)}"]\n',
    )
    proc = run(home, "--profile", "lab", "--output", "json", "show", host(http_server), "--job", job_id(0x360))
    assert proc.returncode == 0, proc.stderr
    shown = settings(home, "--profile", "lab")["settings"]["password"]
    assert shown["value"] is None and shown["origin"].startswith("password_command of")
    # With no HOST, the profile's hosts:
    listed = run(home, "--profile", "lab", "--output", "json", "list")
    assert listed.returncode == 0 and json.loads(listed.stdout)["results"][0]["host"] == host(http_server)


def test_a_failing_password_command_is_a_usage_error_that_shows_no_output(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "password-command-fails.sh"  # a credential store: it prints the secret
    script.write_text(f"#!/bin/sh\necho {CANARY_PASSWORD}x\necho 'the store is locked' >&2\nexit 3\n")
    script.chmod(0o700)
    write_config(home, f'[default]\nusername = "alice"\nscheme = "http"\npassword_command = "{script}"\n')
    proc = run(home, "show", "127.0.0.1:1", "--job", "x")
    assert proc.returncode == 2 and "failed (exit 3): the store is locked" in proc.stderr
    assert CANARY_PASSWORD + "x" not in proc.stderr


def test_the_keyring(home: Path, http_server: FakeWinRMServer, tmp_path: Path) -> None:
    (tmp_path / "test_keyring_backend.py").write_text(KEYRING_BACKEND)
    store = tmp_path / "keyring-password.json"  # a credential store: the canary scan allows it here only
    store.write_text("{}")
    write_config(home, '[default]\nusername = "alice"\nscheme = "http"\nkeyring = true\n')
    env = {"PYTHON_KEYRING_BACKEND": "test_keyring_backend.FileKeyring", "PYTHONPATH": str(tmp_path),
           "TEST_KEYRING_FILE": str(store)}  # fmt: skip

    def keyring(call: str) -> None:  # as `keyring set hvjob alice` would, through keyring's public API
        code = f"import keyring, sys; keyring.{call}('hvjob', 'alice', *sys.argv[1:])"
        extra = [CANARY_PASSWORD] if call == "set_password" else []
        subprocess.run([sys.executable, "-c", code, *extra], env={**os.environ, **env}, check=True)

    keyring("set_password")
    proc = run(home, "--output", "json", "show", host(http_server), "--job", job_id(0x360), env=env)
    assert proc.returncode == 0, proc.stderr
    keyring("delete_password")
    assert json.loads(store.read_text()) == {}
    missing = run(home, "show", host(http_server), "--job", job_id(0x360), env=env)
    assert missing.returncode == 2 and "keyring set hvjob alice" in missing.stderr


def test_a_file_others_can_read_is_refused_when_it_holds_anything_secret_like(home: Path) -> None:
    path = write_config(home, '[default]\npassword_command = "pass show hv"\n', mode=0o644)
    proc = run(home, "config", "show")
    assert proc.returncode == 2 and f"chmod 600 {path}" in proc.stderr
    write_config(home, '[default]\nscheme = "http"\n', mode=0o644)  # nothing secret-like: fine
    assert run(home, "config", "show").returncode == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[default]\npassword = "x"\n', "reads no password from its config file"),
        ('[profile.lab]\nca_trsut = "x"\n', "unknown key 'ca_trsut' (did you mean 'ca_trust'?)"),
        ("[defaults]\n", "unknown table [defaults]"),
        ("[default\n", "cannot read"),
        ('[default]\nhosts = "h1"\n', "hosts must be a list"),
    ],
)
def test_config_mistakes_are_usage_errors(home: Path, text: str, message: str) -> None:
    write_config(home, text)
    proc = run(home, "config", "show")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_an_unknown_profile_names_the_known_ones(home: Path) -> None:
    write_config(home, "[profile.lab]\n[profile.prod]\n")
    proc = run(home, "--profile", "staging", "list", "h1")
    assert proc.returncode == 2 and "no profile 'staging' (profiles: lab, prod)" in proc.stderr


def test_host_groups(home: Path, http_server: FakeWinRMServer) -> None:
    write_config(
        home,
        f'[default]\nusername = "alice"\nscheme = "http"\n[default.groups]\nlab = ["{host(http_server)}"]\n',
    )
    env = {"HVJOB_PASSWORD": CANARY_PASSWORD}
    proc = run(home, "--output", "json", "list", "@lab", env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["results"][0]["host"] == host(http_server)
    proc = run(home, "list", "@nope", env=env)
    assert proc.returncode == 2 and "no host group @nope" in proc.stderr and "@lab" in proc.stderr


def _complete(home: Path, words: str) -> list[str]:
    env = {"_HVJOB_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    proc = run(home, env=env)
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]


def test_shell_completion_of_profiles_and_hosts(home: Path) -> None:
    write_config(home, '[profile.lab]\nhosts = ["hvnode01", "hvnode02"]\n[profile.lab.groups]\nprod = ["x"]\n'
                       '[profile.prod]\n')  # fmt: skip
    assert _complete(home, "hvjob --profile ") == ["lab", "prod"]
    assert _complete(home, "hvjob --profile lab list hvnode") == ["hvnode01", "hvnode02"]
    assert _complete(home, "hvjob --profile lab stop @") == ["@prod"]
    for shell, marker in (("bash", "complete -o"), ("zsh", "#compdef hvjob"), ("fish", "complete --no-files")):
        proc = run(home, "completion", shell)
        assert proc.returncode == 0 and marker in proc.stdout and "_HVJOB_COMPLETE" in proc.stdout


def test_shell_completion_of_inventory_hosts(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("ansible", reason="ansible-core (hvjob[ansible]) not installed")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[hyperv]\nhvnode01\nhvnode02\n")
    assert _complete(home, f"hvjob --inventory {inventory} list h") == ["hvnode01", "hvnode02", "hyperv"]


def test_the_man_pages_are_built_from_the_help(tmp_path: Path) -> None:
    click_man = Path(sys.executable).with_name("click-man")
    proc = subprocess.run([str(click_man), "hvjob", "--target", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pages = {p.name: p.read_text() for p in tmp_path.glob("*.1")}
    assert {"hvjob.1", "hvjob-stop.1", "hvjob-list.1", "hvjob-config-show.1"} <= set(pages)
    assert "older\\-than" in pages["hvjob-stop.1"] and "profile" in pages["hvjob.1"]


def test_list_sorted_by_a_column(http_server: FakeWinRMServer, home: Path) -> None:
    env = {"HVJOB_PASSWORD": CANARY_PASSWORD}
    args = ["--scheme", "http", "-u", "alice", "--output", "json", "list", host(http_server)]
    jobs = json.loads(run(home, *args, "--sort", "state", env=env).stdout)["results"][0]["jobs"]
    states = [j["JobState"] for j in jobs]
    assert states == sorted(states) and len(set(states)) > 1
    unsorted = json.loads(run(home, *args, env=env).stdout)["results"][0]["jobs"]
    assert [j["JobState"] for j in unsorted] != states  # the host's own order is another: --sort did it


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('username = "CONTOSO\\admin"', "single quotes 'CONTOSO\\admin'"),  # \a is no TOML escape: an error
        ('username = "CONTOSO\\backup"', "holds a control character ('CONTOSO\\x08ackup')"),  # \b is: a backspace
    ],
    ids=["invalid escape", "valid escape"],
)
def test_a_domain_user_in_double_quotes_is_an_error_that_says_how_to_write_it(home: Path, line: str, says: str) -> None:
    write_config(home, f"[default]\n{line}\n")
    proc = run(home, "config", "show")
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
