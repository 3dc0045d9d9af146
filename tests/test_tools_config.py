"""[mcp.NAME] and [tools] settings, tool names, result text and secret scrubbing (no server needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmchat.config import (
    Config,
    McpTransport,
    ToolSettings,
    load_config,
    mask_url,
    masked_config_dict,
    parse_mcp_servers,
    parse_tool_settings,
    paths,
    save_config,
)
from glmchat.tools.names import MAX_FUNCTION_NAME, function_name, is_valid_function_name
from glmchat.tools.results import CallStatus, ToolResult, content_text, for_model, scrub

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-7f3a9c2e11d04b8e9a6f5c3d2b1a0998"
HEADER = f"Bearer {TOKEN}"

CONFIG_TOML = f'''
host = "zai"

[mcp.notes]
command = ["uvx", "notes-server", "--root", "~/notes"]
env = {{ NOTES_TOKEN = "{TOKEN}" }}
cwd = "~/work"
trusted = ["read_note", "list_notes"]
timeout = 12.5

[mcp.search]
command = "npx"
args = ["-y", "search-server"]
trusted = true
enabled = false

[mcp.remote]
url = "https://tools.example.com/mcp"
headers = {{ Authorization = "{HEADER}" }}
start_timeout = 90

[tools]
max_steps = 7
call_timeout = 30
max_result_chars = 5000
'''


def write_config(text: str) -> Path:
    p = paths()
    p.config_file.write_text(text, encoding="utf-8")
    os.chmod(p.config_file, 0o600)
    return p.config_file


# -- parsing -------------------------------------------------------------------------------------------


def test_mcp_tables_in_the_usual_shapes_parse() -> None:
    write_config(CONFIG_TOML)
    config = load_config()
    assert config.warnings == []
    servers = config.mcp_servers()
    assert list(servers) == ["notes", "search", "remote"]

    notes = servers["notes"]
    assert notes.transport is McpTransport.STDIO
    home = os.path.expanduser("~")
    assert notes.command == ("uvx", "notes-server", "--root", f"{home}/notes")  # no shell runs it: ~ expanded here
    assert notes.env == {"NOTES_TOKEN": TOKEN} and notes.cwd == f"{home}/work"
    assert notes.trusts("read_note") and not notes.trusts("delete_note") and not notes.trust_all
    assert notes.timeout == 12.5 and notes.enabled

    search = servers["search"]
    assert search.command == ("npx", "-y", "search-server") and search.trust_all and not search.enabled
    assert search.trusts("anything")

    remote = servers["remote"]
    assert remote.transport is McpTransport.HTTP and remote.url == "https://tools.example.com/mcp"
    assert remote.headers == {"Authorization": HEADER} and remote.start_timeout == 90.0
    assert remote.timeout is None and not remote.trusts("x")

    assert config.tool_settings() == ToolSettings(max_steps=7, call_timeout=30.0, max_result_chars=5000)
    # Secrets stay out of the repr (a traceback or a debug print shows the object).
    assert TOKEN not in repr(servers) and TOKEN[-8:] not in repr(servers)


def test_defaults_without_tables() -> None:
    config = load_config()
    assert config.mcp_servers() == {}
    assert config.tool_settings() == ToolSettings(max_steps=25, call_timeout=60.0, max_result_chars=20_000)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"args": ["x"]}, "[mcp.bad] needs either command"),
        ({"command": ["a"], "url": "https://x/mcp"}, "[mcp.bad] needs either command"),
        ({"command": []}, "[mcp.bad] command must be a list of strings"),
        ({"command": ["prog", 3]}, "[mcp.bad] command must be a list of strings"),
        ({"command": "prog", "args": "one two"}, "[mcp.bad] args must be a list of strings"),
        ({"command": "  "}, "[mcp.bad] command is empty"),
        ({"command": ["prog"], "env": {"TOKEN": 12345678}}, "[mcp.bad] env.TOKEN must be a string"),
        ({"command": ["prog"], "env": "TOKEN=x"}, "[mcp.bad] env must be a table"),
        ({"command": ["prog"], "cwd": 3}, "[mcp.bad] cwd must be a folder path"),
        ({"url": "ftp://x/mcp"}, "[mcp.bad] url must start with https://"),
        ({"url": "http://tools.example.com/mcp"}, "[mcp.bad] url: refusing unencrypted http://"),
        ({"url": "https://x/mcp", "headers": {"Authorization": ["Bearer", "x"]}}, "[mcp.bad] headers.Authorization must be a string"),
    ],
)
def test_a_bad_server_is_skipped_with_one_line_naming_table_and_key(table: dict, expected: str) -> None:
    servers, warnings = parse_mcp_servers({"bad": table, "good": {"command": ["prog"]}}, "config.toml")
    assert list(servers) == ["good"]  # the others still load
    [warning] = warnings
    assert warning.startswith(f"config.toml: {expected}") and warning.endswith("server skipped")
    assert "\n" not in warning
    assert "12345678" not in warning and "TOKEN=x" not in warning  # values are never quoted


def test_bad_optional_keys_warn_and_keep_the_server() -> None:
    servers, warnings = parse_mcp_servers(
        {"s": {"command": ["prog"], "trusted": "yes", "timeout": -1, "start_timeout": "soon", "enabled": "no",
               "colour": "blue", "headers": {"A": "b"}}},
        "config.toml",
    )
    server = servers["s"]
    assert not server.trust_all and server.trusted_tools == frozenset() and server.timeout is None
    assert server.start_timeout == 60.0 and server.enabled and server.headers == {}
    text = "\n".join(warnings)
    for key in ("trusted", "timeout", "start_timeout", "enabled", "'colour'", "headers applies only to url servers"):
        assert key in text
    assert len(warnings) == 6


def test_server_names_must_fit_function_names() -> None:
    servers, warnings = parse_mcp_servers({"my.server": {"command": ["x"]}, "ok-name_2": {"command": ["x"]}})
    assert list(servers) == ["ok-name_2"]
    assert "[mcp.my.server]" in warnings[0] and "letters, digits" in warnings[0]


def test_plain_http_is_fine_on_this_machine_and_the_lan_or_when_allowed() -> None:
    tables = {
        "loop": {"url": "http://127.0.0.1:8000/mcp"},
        "lan": {"url": "http://192.168.1.20:8000/mcp"},
        "far": {"url": "http://tools.example.com/mcp", "allow_insecure_http": True},
    }
    servers, warnings = parse_mcp_servers(tables)
    assert warnings == [] and list(servers) == ["loop", "lan", "far"]


def test_tool_limits_out_of_range_keep_their_defaults() -> None:
    settings, warnings = parse_tool_settings(
        {"max_steps": 0, "call_timeout": "long", "max_result_chars": 2.5, "speed": 3}, "config.toml"
    )
    assert settings == ToolSettings()
    assert len(warnings) == 4 and all(w.startswith("config.toml: [tools] ") for w in warnings)
    settings, warnings = parse_tool_settings({"max_steps": 3, "call_timeout": 1.5, "max_result_chars": 100})
    assert settings == ToolSettings(3, 1.5, 100) and warnings == []


def test_broken_tables_warn_at_load_and_the_app_still_starts() -> None:
    write_config('theme = "x"\nmcp = 3\n[tools]\nmax_steps = "many"\n')
    config = load_config()
    assert config.theme == "x"
    assert any("mcp = 3 is not a table" in w for w in config.warnings)
    assert any("[tools] max_steps" in w for w in config.warnings)
    assert config.mcp_servers() == {} and config.tool_settings().max_steps == 25


def test_mcp_tables_survive_a_save_unchanged_even_when_broken() -> None:
    text = CONFIG_TOML + '\n[mcp.broken]\ncommand = 3\n'
    write_config(text)
    config = load_config()
    assert any("[mcp.broken]" in w for w in config.warnings)
    config.theme = "glm-light"
    save_config(config)
    again = load_config()
    assert again.mcp == config.mcp and again.tools == config.tools
    assert again.mcp["broken"] == {"command": 3}  # the user's entry is kept for them to fix
    assert again.mcp_servers()["remote"].headers == {"Authorization": HEADER}


def test_world_readable_config_with_mcp_secrets_warns() -> None:
    path = write_config(CONFIG_TOML)
    os.chmod(path, 0o644)
    assert any("chmod 600" in w for w in load_config().warnings)
    write_config('[mcp.plain]\ncommand = ["x"]\n')
    os.chmod(path, 0o644)
    assert not any("chmod 600" in w for w in load_config().warnings)


# -- showing the config -----------------------------------------------------------------------------------


def test_masked_config_hides_header_env_and_url_secrets() -> None:
    config = Config(mcp={
        "a": {"command": ["x"], "env": {"NOTES_TOKEN": TOKEN}},
        "b": {"url": f"https://user:pa55word-long@tools.example.com/mcp?key={TOKEN}&v=2", "headers": {"Authorization": HEADER}},
    })
    shown = repr(masked_config_dict(config))
    assert TOKEN not in shown and TOKEN[:8] not in shown and TOKEN[-8:] not in shown
    assert "pa55word" not in shown
    assert "NOTES_TOKEN" in shown and "Authorization" in shown and "tools.example.com/mcp" in shown
    assert config.mcp["a"]["env"]["NOTES_TOKEN"] == TOKEN  # the config itself is untouched
    assert mask_url("https://h/mcp?key=abc&x") == "https://h/mcp?key=…&x"


def test_config_show_command_masks_mcp_secrets(glmchat_home: Path) -> None:
    write_config(CONFIG_TOML)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "glmchat", "config", "show"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "[mcp.remote]" in out and "Authorization" in out and "NOTES_TOKEN" in out
    assert TOKEN not in out and TOKEN[:8] not in out and TOKEN[-8:] not in out
    assert stat.S_IMODE(paths().config_file.stat().st_mode) == 0o600


# -- function names ---------------------------------------------------------------------------------------


def test_function_names_are_namespaced_valid_and_stable() -> None:
    assert function_name("notes", "read_note") == "notes__read_note"
    assert function_name("fs", "read.file/v2 beta") == "fs__read_file_v2_beta"
    long = function_name("a-rather-long-server-name", "x" * 80)
    assert len(long) == MAX_FUNCTION_NAME and is_valid_function_name(long)
    assert long == function_name("a-rather-long-server-name", "x" * 80)  # same input, same name
    assert long != function_name("a-rather-long-server-name", "x" * 79 + "y")  # the cut-off part still counts


def test_colliding_names_get_distinct_valid_names() -> None:
    taken: set[str] = set()
    names = []
    for server, tool in [("a", "b__c"), ("a__b", "c"), ("a", "b.c"), ("a", "b/c")]:
        name = function_name(server, tool, taken)
        taken.add(name)
        names.append(name)
    assert names[0] == "a__b__c"
    assert len(set(names)) == 4 and all(is_valid_function_name(n) for n in names)


@given(st.text(min_size=1, max_size=100), st.text(min_size=1, max_size=100))
def test_any_server_and_tool_name_gives_a_valid_function_name(server: str, tool: str) -> None:
    assert is_valid_function_name(function_name(server, tool, {f"{server}__{tool}"}))


# -- results ------------------------------------------------------------------------------------------------


def test_content_text_joins_text_and_summarises_the_rest() -> None:
    blocks = [
        {"type": "text", "text": "first"},
        {"type": "image", "mimeType": "image/png", "data": "A" * 4000},
        {"type": "text", "text": "naïve 漢字 🚀"},
        {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}},
        {"type": "resource", "resource": {"uri": "file:///b.bin", "mimeType": "application/zip", "blob": "AAAA"}},
        {"type": "resource_link", "uri": "file:///c", "name": "c"},
        {"type": "audio", "mimeType": "audio/wav", "data": "AAAA"},
    ]
    assert content_text(blocks).split("\n") == [
        "first",
        "[image: image/png, 3.0 kB]",
        "naïve 漢字 🚀",
        "[resource file:///a.txt]",
        "inside",
        "[resource file:///b.bin: application/zip, 3 bytes]",
        "[resource link: c <file:///c>]",
        "[audio: audio/wav, 3 bytes]",
    ]
    assert content_text([], {"answer": 42, "name": "é"}) == '{"answer": 42, "name": "é"}'


def test_for_model_cuts_to_the_limit_and_says_so() -> None:
    assert for_model("short", 100) == "short"
    text = "".join(f"{i:05d}\n" for i in range(10_000))
    cut = for_model(text, 1000)
    assert len(cut) <= 1000 and text.startswith(cut.split("\n[… result truncated")[0])
    assert "60,000 characters in all" in cut


def test_denied_result_is_an_error_the_model_reads() -> None:
    result = ToolResult.denied("notes__delete", "notes", "delete")
    assert result.status is CallStatus.DENIED and result.is_error and "declined" in result.for_model


# -- secrets --------------------------------------------------------------------------------------------------


def test_scrub_hides_a_secret_whole_and_in_pieces() -> None:
    secrets = [HEADER, "short"]
    line = f"failed: {HEADER}; retry with {TOKEN[:12]}… then {TOKEN[-10:]} and short and sh"
    clean = scrub(line, secrets)
    for piece in (TOKEN, TOKEN[:12], TOKEN[-10:], TOKEN[4:12], "short"):
        assert piece not in clean
    assert clean.startswith("failed:") and "sh" in clean and "retry with" in clean
    assert scrub("nothing here", secrets) == "nothing here"
    assert scrub("a 1 b", ["1", ""]) == "a 1 b"  # too short to tell apart from text: left alone


@given(st.text(min_size=8, max_size=40), st.text(max_size=30), st.text(max_size=30), st.integers(0, 32))
def test_no_piece_of_eight_characters_survives(secret: str, before: str, after: str, cut: int) -> None:
    piece = secret[cut : cut + 8]
    if len(piece) < 8:
        return
    clean = scrub(before + piece + after, [secret])
    assert piece not in clean


def test_a_crash_log_never_holds_mcp_secrets(glmchat_home: Path) -> None:
    write_config(CONFIG_TOML)
    fault = (
        "import glmchat.config as c\n"
        "def broken(config):\n"
        "    s = config.mcp_servers()\n"
        "    raise RuntimeError('boom ' + s['remote'].headers['Authorization'] + ' ' + s['notes'].env['NOTES_TOKEN'])\n"
        "c.config_to_dict = broken\n"
    )
    code = f"import sys\n{fault}\nfrom glmchat.cli import main\nsys.exit(main(['config', 'show']))\n"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "RuntimeError: boom" in proc.stderr
    log = (glmchat_home / "glmchat.log").read_text()
    assert "RuntimeError: boom" in log
    assert TOKEN not in proc.stderr + proc.stdout + log
