"""Keeping secrets out of what nbops writes: records, notebooks, packages, bundles.

Two kinds of secret:

- credentials inside text (`redact_value`): the password of a URL
  (`postgres://user:***@host/db`: user and host stay readable), the value of a
  `password=`/`token=`/`api_key=`-like pair in a query string or a keyword string, the token
  after `Bearer`/`Basic`/`Token`, a quoted JSON `"password": "..."`, and values shaped like
  well-known keys (AWS access key ids, GitHub, Slack, OpenAI-style `sk-` tokens). Environment
  variables captured with a run go through it (`redact_environment`), whatever their name;
  variables whose *name* looks secret, and every `NBOPS_PARAM_*`, are left out altogether.
- secret parameters: a parameter whose name looks secret (`looks_secret`),
  that `secret_params` in `[tool.nbops]` lists, or whose comment says `secret`. Its literal
  default is never written by nbops: the exported package reads it from the environment
  variable `secret_env_var(name)` (`NBOPS_PARAM_<NAME>`), and the copies of a notebook a run
  keeps have it replaced (`redact_parameters_source`, `redact_notebook`).

Redaction never needs the secret's value: it rewrites by position (the parameters cell's
syntax tree) and by shape (the patterns above), so it also works on a partial notebook left
by a run that died (`redact_notebook(path, names)`, safe to call twice).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nbops._atomic import atomic_path, atomic_write_text

REDACTED = "***"

SECRET_ENV_PREFIX = "NBOPS_PARAM_"


def secret_env_var(name: str) -> str:
    """The environment variable a secret parameter's value is read from: `db_password` ->
    `NBOPS_PARAM_DB_PASSWORD` (by the exported package, and by `nbops run`/`rerun` when no
    value is given on the command line)."""
    return SECRET_ENV_PREFIX + name.upper()


# -- which names are secret ---------------------------------------------------------------

_SECRET_WORDS = frozenset(
    {"token", "key", "secret", "password", "passwd", "pwd", "credential", "credentials",
     "private", "apikey", "auth"}
)  # fmt: skip


def looks_secret(name: str) -> bool:
    """Whether a name has a word that marks secrets: `api_token`, `AWS_SECRET_ACCESS_KEY`,
    `dbPassword` (but not `max_tokens` or `keyring`)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return any(word in _SECRET_WORDS for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()))


def is_secret_parameter(name: str, description: str, secret_names: Sequence[str]) -> bool:
    """Whether a parameter is secret: its name looks secret, `secret_params` lists it, or its
    comment says `secret`."""
    return bool(
        looks_secret(name)
        or name in secret_names
        or re.search(r"\bsecret\b", description, re.IGNORECASE)
    )


# -- credentials inside text ---------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_AUTHORITY_END = re.compile(r"[/?#\s]")
# `password=...` in a query string, a DSN (`host=x password=y`) or a command line.
_PAIR = re.compile(
    r"""(?<![\w.\-])(?P<key>[A-Za-z_][\w.\-]*)\s*=\s*"""
    r"""(?=(?P<value>'[^']*'|"[^"]*"|[^&;,\s'"]+))"""
)
_JSON_PAIR = re.compile(r'"(?P<key>[^"\\]{1,100})"(?P<sep>\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)"')
_SCHEME_TOKEN = re.compile(
    r"\b(?P<scheme>Bearer|Basic|Token|Digest|Bot)(?P<space>\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})",
    re.IGNORECASE,
)
_KNOWN_TOKENS = re.compile(
    r"\b(?:"
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"  # AWS key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style keys
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r")\b"
)
_SECRET_KEY_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "pwd", "credential", "credentials", "apikey",
     "sig", "signature", "sas", "private"}
)  # fmt: skip


def _secret_key(key: str) -> bool:
    """Whether a `key=value` pair holds a credential: `password=`, `access_token=`, `api_key=`,
    `auth=` (but not `authSource=`, a MongoDB setting, or `keyring=`)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    words = [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
    return bool(words) and (
        any(w in _SECRET_KEY_WORDS for w in words) or words[-1] in ("key", "auth")
    )


def _url_password_spans(text: str) -> list[tuple[int, int]]:
    """Where the passwords of `scheme://user:password@host` URLs are, read as URL parsers
    read them: the authority ends at the first `/`, `?`, `#` or space, and the user info is
    what comes before its last `@`."""
    spans = []
    for match in _SCHEME.finditer(text):
        start = match.end()
        end_match = _AUTHORITY_END.search(text, start)
        end = end_match.start() if end_match else len(text)
        at = text.rfind("@", start, end)
        if at < 0:
            continue
        colon = text.find(":", start, at)
        if colon >= 0 and colon + 1 < at:
            spans.append((colon + 1, at))
    return spans


def _masked(text: str, spans: Iterable[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, last = [], 0
    for start, end in merged:
        parts += [text[last:start], REDACTED]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _unquoted(start: int, end: int, value: str) -> tuple[int, int]:
    """The span of a value without its quotes."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return start + 1, end - 1
    return start, end


def redact_value(text: str) -> str:
    """`text` with the credentials in it replaced by `***` (see the module docstring); text
    without credentials comes back unchanged, and redacting twice changes nothing more.

    Every credential is found in the text as given, then all are masked at once (a pair
    after a value that is not secret is still found: matches overlap)."""
    if not text:
        return text
    spans = _url_password_spans(text)
    spans += [m.span() for m in _KNOWN_TOKENS.finditer(text)]
    spans += [
        _unquoted(*m.span("value"), m.group("value"))
        for m in _PAIR.finditer(text)
        if _secret_key(m.group("key"))
    ]
    spans += [m.span("value") for m in _JSON_PAIR.finditer(text) if _secret_key(m.group("key"))]
    spans += [m.span("value") for m in _SCHEME_TOKEN.finditer(text)]
    spans = [(s, e) for s, e in spans if e > s and text[s:e] != REDACTED]
    return _masked(text, spans) if spans else text


def redact_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """Environment variables fit to record: names that look secret (TOKEN, KEY, PASSWORD...)
    and `NBOPS_PARAM_*` (secret parameters' values) left out, credentials in the other
    values redacted (`DATABASE_URL=postgres://user:***@host/db`)."""
    return {
        name: redact_value(value)
        for name, value in sorted(variables.items())
        if not looks_secret(name) and not name.startswith(SECRET_ENV_PREFIX)
    }


# -- secret parameters in notebook code -----------------------------------------------------

_ASSIGNED = re.compile(r"^(\s*)([A-Za-z_]\w*)\s*(:[^=]*)?=(?!=)")


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def replace_assigned_values(
    source: str, names: Iterable[str], replacement: Callable[[str], str], *, literal_only: bool
) -> str:
    """`source` with the value of each assignment to one of `names` (`x = v`, `x: T = v`)
    replaced by `replacement(name)`, its annotation and comment kept. With `literal_only`,
    only literal values are replaced (a computed line such as `token = os.environ["T"]` holds
    no secret and still runs).

    Code that is not Python (an IPython magic in the cell) falls back to whole lines:
    `name = ...` on one line becomes `name = <replacement>`.
    """
    wanted = set(names)
    if not wanted:
        return source
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _replace_lines(source, wanted, replacement)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def position(lineno: int, col: int) -> int:
        # ast columns count UTF-8 bytes
        return offsets[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))

    spans: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if not isinstance(target, ast.Name) or target.id not in wanted or value is None:
            continue
        if literal_only and not _is_literal(value):
            continue
        if value.end_lineno is None or value.end_col_offset is None:
            continue
        start = position(value.lineno, value.col_offset)
        end = position(value.end_lineno, value.end_col_offset)
        spans.append((start, end, replacement(target.id)))
    for start, end, text in sorted(spans, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def _replace_lines(source: str, names: set[str], replacement: Callable[[str], str]) -> str:
    out = []
    for line in source.splitlines():
        match = _ASSIGNED.match(line)
        if match and match.group(2) in names:
            line = f"{match.group(1)}{match.group(2)}{match.group(3) or ' '}= {replacement(match.group(2))}"
        out.append(line)
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def redacted_literal(_: str) -> str:
    return f'"{REDACTED}"'


def redact_parameters_source(source: str, names: Iterable[str]) -> str:
    """A parameters cell's code with the literal values of these parameters replaced by
    `"***"` (computed lines kept: they hold code, not a value)."""
    return replace_assigned_values(source, names, redacted_literal, literal_only=True)


_PARAMETER_TAGS = frozenset({"parameters", "injected-parameters", "pipeline-parameters"})


def redact_notebook_node(nb: Any, names: Iterable[str], *, literal_only: bool = False) -> bool:
    """Redact an nbformat notebook in place: every assignment to a secret parameter in its
    parameters cells (papermill's `injected-parameters` cell included; with `literal_only`,
    only those of a literal value) and papermill's record of the values. Returns whether
    anything changed."""
    wanted = set(names)
    if not wanted:
        return False
    changed = False
    meta = nb.get("metadata", {}).get("papermill", {})
    for key in ("parameters", "default_parameters"):
        values = meta.get(key) or {}
        for name in wanted & set(values):
            if values[name] != REDACTED:
                values[name] = REDACTED
                changed = True
    for cell in nb.get("cells", []):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.get("cell_type") != "code" or not tags & _PARAMETER_TAGS:
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        new = replace_assigned_values(text, wanted, redacted_literal, literal_only=literal_only)
        if new != text:
            cell["source"] = new
            changed = True
    return changed


def redact_notebook(path: str | Path, names: Iterable[str]) -> bool:
    """Redact the notebook file at `path` (an .ipynb, possibly left half-written by a run that
    died, or a percent-format .py) in place, through a temporary file and a rename: the
    values of the secret parameters `names` in its parameters cells and papermill's
    metadata. Returns whether the file changed; a missing file or one that cannot be read
    as a notebook is left as it is (False). Safe to call again on a redacted file."""
    path = Path(path)
    wanted = set(names)
    if not wanted or not path.is_file():
        return False
    if path.suffix != ".ipynb":
        return _redact_script(path, wanted)
    import nbformat

    try:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception:  # a file cut short by a killed process: nothing nbops can parse
        return False
    if not redact_notebook_node(nb, wanted):
        return False
    _write_atomically(path, nbformat.writes(nb))
    return True


def _redact_script(path: Path, names: set[str]) -> bool:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    new = _redact_script_text(text, names)
    if new == text:
        return False
    _write_atomically(path, new)
    return True


def _redact_script_text(text: str, names: set[str]) -> str:
    """A percent-format script with its `parameters` cells (the lines after a `# %%` marker
    naming the tag, up to the next marker) redacted."""
    parts = re.split(r"(?m)^(?=# %%)", text)
    for i, part in enumerate(parts):
        header, _, body = part.partition("\n")
        if header.startswith("# %%") and "parameters" in header:
            parts[i] = header + "\n" + redact_parameters_source(body, names)
    return "".join(parts)


def _write_atomically(path: Path, text: str) -> None:
    atomic_write_text(path, text)  # keeps the file's mode


# -- a run's secrets: in the kernel's environment, not in its notebook -----------------------

RUN_SECRETS_ENV = "NBOPS_RUN_SECRETS"


def _from_run_environment(name: str) -> str:
    return (
        f'__import__("ast").literal_eval(__import__("os").environ["{RUN_SECRETS_ENV}"])[{name!r}]'
    )


def parameters_from_environment(source: str, values: Mapping[str, Any]) -> str:
    """The parameters cell `nbops run` executes: each literal value of a secret parameter in
    `values` replaced by a read of the kernel's `NBOPS_RUN_SECRETS` variable (which
    `run_secrets_environment` fills), and a secret given for a computed line assigned at
    the end, so the run's notebook files never hold the value."""
    new = replace_assigned_values(source, values, _from_run_environment, literal_only=True)
    try:
        tree = ast.parse(new)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return new
    literal = set()
    for node in ast.walk(tree):
        target = (
            node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else node.target
            if isinstance(node, ast.AnnAssign)
            else None
        )
        if isinstance(target, ast.Name) and RUN_SECRETS_ENV in ast.unparse(node):
            literal.add(target.id)
    rest = [name for name in values if name not in literal]
    if rest:
        new = (
            new.rstrip("\n")
            + "\n"
            + "".join(f"{name} = {_from_run_environment(name)}\n" for name in rest)
        )
    return new


def run_secrets_environment(values: Mapping[str, Any]) -> dict[str, str]:
    """The kernel environment variable that carries a run's secret values (see
    parameters_from_environment); empty when there are none."""
    return {RUN_SECRETS_ENV: repr(dict(values))} if values else {}


def write_redacted_copy(source: Path, target: Path, names: Iterable[str]) -> None:
    """Copy a notebook file with its secret parameters' literal values replaced by `"***"`,
    through a temporary file and a rename (the value is never on disk in the copy, even for
    an instant). Without secrets, a byte-for-byte copy."""
    import shutil

    wanted = set(names)
    text = _redacted_text(source, wanted) if wanted else None
    if text is not None:
        atomic_write_text(target, text)
        return
    with atomic_path(target) as tmp:  # no secrets, or nothing nbops can read as a notebook
        shutil.copyfile(source, tmp)


def _redacted_text(source: Path, names: set[str]) -> str | None:
    if source.suffix != ".ipynb":
        try:
            text = source.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return _redact_script_text(text, names)
    import nbformat

    try:
        nb = nbformat.read(source, as_version=nbformat.NO_CONVERT)
    except Exception:
        return None
    if not redact_notebook_node(nb, names, literal_only=True):
        return None
    return str(nbformat.writes(nb))


def run_secret_names(record: Any) -> set[str]:
    """The secret parameters of a run record (`nbops.runs.record.RunRecord`): those its
    schema marks secret and those whose recorded value is `***` (a secret given for a
    computed line has no schema entry)."""
    names = {p.name for p in record.parameter_schema if p.secret}
    return names | {k for k, v in record.parameters.items() if v == REDACTED}


def redact_run_folder(run_dir: str | Path, names: Iterable[str]) -> list[Path]:
    """Redact every notebook a run keeps in its folder (`output.ipynb`, possibly partial;
    `input.ipynb`; the `source` copy) with redact_notebook; the files changed. For a run
    that died before nbops could finish it (call it when the death is detected, with
    `run_secret_names(record)`); safe to call on a finished run, or twice."""
    folder = Path(run_dir)
    wanted = set(names)
    if not wanted or not folder.is_dir():
        return []
    changed = []
    for path in sorted(folder.iterdir()):
        if path.suffix in (".ipynb", ".py") and path.is_file() and redact_notebook(path, wanted):
            changed.append(path)
    return changed
