"""IVR flows as data: YAML loading and validation (``ivr_flows/*.yaml``, one flow a file).

A flow file::

    flow: main                      # name = the FastAGI script name (agi://host:4573/main)
    record: open                    # open | join | agent | end (see RECORD_MODES)
    start: greeting
    nodes:
      greeting:
        type: play
        prompt: {sound: hl-greeting, text: "您好，这里是12345市民服务热线……"}
        next: queue

Every problem is collected (not just the first) and reported as ``file:line: problem`` — line numbers come
from PyYAML's node marks (a loader whose mapping constructor keeps ``start_mark`` of every key).
:func:`load_flows` raises :class:`FlowError` carrying all problems of all files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from store.appendix_c import FIELDS_BY_ID

DTMF_KEYS = frozenset("0123456789*#")
SOUND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-/]*$")
FLOW_NAME_RE = re.compile(r"^[a-z][a-z0-9\-]*$")
PATTERN_ATOMS_RE = re.compile(r"^[0-9\\d\[\]\-{},?*+|()^$#]*$")
QUEUE_STATUSES = ("TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL", "CONTINUE")
RECORD_MODES = ("open", "join", "agent", "end")
# Record fields a `set` node may write (IVR-side facts only; everything else belongs to the agent's form).
SETTABLE_FIELDS = ("appeal_type", "language", "urgency", "followup_pref", "confidential", "is_anonymous")
OUTCOMES = FIELDS_BY_ID["call_outcome"].values
TRANSFER_TYPES = tuple(v for v in FIELDS_BY_ID["transfer_type"].values if v != "无")


class FlowError(Exception):
    """One or more flow files are invalid; ``problems`` lists every one as ``file:line: message``."""

    def __init__(self, problems: list["FlowProblem"]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class FlowProblem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --------------------------------------------------------------------------- YAML with line numbers
class _LDict(dict):  # type: ignore[type-arg]
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    duplicate_keys: list[tuple[int, str]]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _LDict:
    loader.flatten_mapping(node)
    out = _LDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key <= 9:
            key = str(key)          # `1: node` in a menu means the key "1"
        if key in out:
            loader.duplicate_keys.append((key_node.start_mark.line + 1, str(key)))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --------------------------------------------------------------------------- flow model
@dataclass(frozen=True)
class Prompt:
    sound: str          # file name without extension under settings.agi.sounds_dir
    text: str           # Chinese text, synthesized by `hotline prompts build`


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    line: int
    next: str | None = None
    prompt: Prompt | None = None
    # type-specific settings, already checked; see NODE_SPECS for each type's keys
    opts: Mapping[str, Any] = field(default_factory=dict)

    def targets(self) -> dict[str, str]:
        """Every node this node can lead to, keyed by where the reference is (``next``, ``choices.1`` …)."""
        out: dict[str, str] = {}
        if self.next:
            out["next"] = self.next
        for key in TARGET_KEYS.get(self.type, ()):
            value = self.opts.get(key)
            if isinstance(value, str):
                out[key] = value
        for key in TARGET_MAPS.get(self.type, ()):
            for k, v in (self.opts.get(key) or {}).items():
                out[f"{key}.{k}"] = v
        return out

    def prompts(self) -> list[Prompt]:
        found = [self.prompt] if self.prompt else []
        for key in PROMPT_KEYS.get(self.type, ()):
            value = self.opts.get(key)
            if isinstance(value, Prompt):
                found.append(value)
        for key in PROMPT_MAPS.get(self.type, ()):
            found.extend(p for p in (self.opts.get(key) or {}).values() if isinstance(p, Prompt))
        return found


@dataclass(frozen=True)
class Flow:
    name: str
    file: str
    start: str
    record: str
    nodes: Mapping[str, Node]
    description: str = ""

    def prompts(self) -> list[Prompt]:
        seen: dict[str, Prompt] = {}
        for node in self.nodes.values():
            for p in node.prompts():
                seen.setdefault(p.sound, p)
        return list(seen.values())

    def goto_flows(self) -> list[tuple[Node, str]]:
        return [(n, n.opts["flow"]) for n in self.nodes.values() if n.type == "goto" and n.opts.get("flow")]


# Keys per node type: (required, optional). `next` and `prompt` are handled for every type.
NODE_SPECS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "play": (frozenset({"prompt", "next"}), frozenset()),
    "menu": (frozenset({"prompt", "choices", "on_fail"}),
             frozenset({"timeout_ms", "retries", "invalid_prompt", "timeout_prompt"})),
    "collect": (frozenset({"prompt", "pattern", "max_digits", "next"}),
                frozenset({"timeout_ms", "retries", "invalid_prompt", "on_fail", "field", "variable",
                           "empty_means", "sensitive"})),
    "record": (frozenset({"prompt", "next"}),
               frozenset({"max_seconds", "silence_seconds", "beep", "kind", "min_seconds", "done_prompt"})),
    "set": (frozenset({"fields", "next"}), frozenset()),
    "hours": (frozenset({"open", "closed"}), frozenset()),
    "queue": (frozenset({"answered"}),
              frozenset({"queue", "timeout", "options", "priority", "statuses", "default", "prompt",
                         "announce_waiting", "ahead_prompt", "ahead_suffix_prompt", "gosub", "next"})),
    "voicemail": (frozenset({"prompt", "next"}),
                  frozenset({"max_seconds", "silence_seconds", "min_seconds", "ticket", "ticket_prompt",
                             "done_prompt", "on_empty"})),
    "survey": (frozenset({"prompt", "next"}),
               frozenset({"timeout_ms", "retries", "invalid_prompt", "thanks_prompt"})),
    "ticket_status": (frozenset({"prompt", "statuses", "next"}),
                      frozenset({"timeout_ms", "retries", "invalid_prompt", "not_found_prompt",
                                 "unavailable_prompt", "intro_prompt"})),
    "transfer": (frozenset({"target", "transfer_type", "next"}), frozenset({"prompt", "transfer_target"})),
    "hangup": (frozenset(), frozenset({"prompt", "outcome", "callback_required"})),
    "goto": (frozenset(), frozenset({"target", "flow"})),
    "end": (frozenset(), frozenset({"prompt"})),
    "agent_connect": (frozenset({"next"}), frozenset()),
    "call_end": (frozenset({"next"}), frozenset()),
}
TERMINAL_TYPES = frozenset({"hangup", "end"})
TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "menu": ("on_fail",), "collect": ("on_fail",), "hours": ("open", "closed"),
    "queue": ("answered", "default"), "voicemail": ("on_empty",), "goto": ("target",),
}
TARGET_MAPS: dict[str, tuple[str, ...]] = {"menu": ("choices",), "queue": ("statuses",)}
PROMPT_KEYS: dict[str, tuple[str, ...]] = {
    "menu": ("invalid_prompt", "timeout_prompt"), "collect": ("invalid_prompt",), "record": ("done_prompt",),
    "queue": ("ahead_prompt", "ahead_suffix_prompt"),
    "voicemail": ("ticket_prompt", "done_prompt"), "survey": ("invalid_prompt", "thanks_prompt"),
    "ticket_status": ("invalid_prompt", "not_found_prompt", "unavailable_prompt", "intro_prompt"),
}
PROMPT_MAPS: dict[str, tuple[str, ...]] = {"ticket_status": ("statuses",)}
INT_KEYS = {"timeout_ms": (500, 60000), "retries": (0, 9), "max_digits": (1, 32), "max_seconds": (1, 600),
            "silence_seconds": (1, 60), "min_seconds": (0, 60), "priority": (0, 100)}
BOOL_KEYS = ("beep", "announce_waiting", "sensitive", "callback_required")


class _Checker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[FlowProblem] = []

    def add(self, line: int, message: str) -> None:
        self.problems.append(FlowProblem(self.file, line, message))


def _line_of(mapping: Any, key: Any, default: int) -> int:
    return getattr(mapping, "key_lines", {}).get(key, getattr(mapping, "line", default))


def _prompt(ck: _Checker, raw: Any, line: int, where: str) -> Prompt | None:
    if not isinstance(raw, Mapping):
        ck.add(line, f"{where}: a prompt must be a mapping with 'sound' and 'text'")
        return None
    unknown = set(raw) - {"sound", "text"}
    if unknown:
        ck.add(line, f"{where}: unknown prompt keys {sorted(map(str, unknown))}")
    sound, text = raw.get("sound"), raw.get("text")
    ok = True
    if not isinstance(sound, str) or not SOUND_RE.match(sound):
        ck.add(_line_of(raw, "sound", line), f"{where}: prompt without a valid sound name (got {sound!r})")
        ok = False
    if not isinstance(text, str) or not text.strip():
        ck.add(_line_of(raw, "text", line), f"{where}: prompt without text")
        ok = False
    return Prompt(sound, text.strip()) if ok else None  # type: ignore[union-attr]


def _check_pattern(ck: _Checker, pattern: Any, line: int, where: str) -> str | None:
    if not isinstance(pattern, str) or not pattern:
        ck.add(line, f"{where}: pattern must be a non-empty regular expression of digits")
        return None
    if not PATTERN_ATOMS_RE.match(pattern):
        ck.add(line, f"{where}: bad digit pattern {pattern!r}: only digits, \\d, classes and counts are allowed")
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        ck.add(line, f"{where}: bad digit pattern {pattern!r}: {exc}")
        return None
    return pattern


def _parse_node(ck: _Checker, node_id: str, raw: Any, line: int) -> Node | None:
    where = f"node {node_id!r}"
    if not isinstance(raw, Mapping):
        ck.add(line, f"{where}: must be a mapping")
        return None
    ntype = raw.get("type")
    if ntype not in NODE_SPECS:
        ck.add(_line_of(raw, "type", line), f"{where}: unknown node type {ntype!r} (known: {', '.join(sorted(NODE_SPECS))})")
        return None
    required, optional = NODE_SPECS[ntype]
    allowed = required | optional | {"type", "next", "prompt"}
    for key in raw:
        if key not in allowed:
            ck.add(_line_of(raw, key, line), f"{where}: unknown key {key!r} for a {ntype} node")
    for key in sorted(required):
        if key not in raw:
            ck.add(line, f"{where}: missing required key {key!r} for a {ntype} node")
    opts: dict[str, Any] = {}
    prompt = None
    if "prompt" in raw:
        prompt = _prompt(ck, raw["prompt"], _line_of(raw, "prompt", line), where)
    nxt = raw.get("next")
    if nxt is not None and not isinstance(nxt, str):
        ck.add(_line_of(raw, "next", line), f"{where}: next must be a node id")
        nxt = None
    for key, value in raw.items():
        kline = _line_of(raw, key, line)
        if key in ("type", "next", "prompt") or key not in allowed:
            continue
        if key in INT_KEYS:
            lo, hi = INT_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                ck.add(kline, f"{where}: {key} must be an integer in {lo}..{hi} (got {value!r})")
                continue
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                ck.add(kline, f"{where}: {key} must be true or false (got {value!r})")
                continue
        elif key.endswith("_prompt"):
            value = _prompt(ck, value, kline, f"{where}.{key}")
            if value is None:
                continue
        opts[key] = value
    _check_type_specific(ck, ntype, where, raw, opts, line)
    return Node(id=node_id, type=ntype, line=line, next=nxt, prompt=prompt, opts=opts)


def _check_type_specific(ck: _Checker, ntype: str, where: str, raw: Mapping[str, Any], opts: dict[str, Any],
                         line: int) -> None:
    def kl(key: str) -> int:
        return _line_of(raw, key, line)

    if ntype == "menu" and "choices" in opts:
        choices = opts["choices"]
        if not isinstance(choices, Mapping) or not choices:
            ck.add(kl("choices"), f"{where}: choices must map DTMF keys to node ids")
            opts["choices"] = {}
        else:
            clean: dict[str, str] = {}
            for key, target in choices.items():
                kline = _line_of(choices, key, kl("choices"))
                if not isinstance(key, str) or len(key) != 1 or key not in DTMF_KEYS:
                    ck.add(kline, f"{where}: bad digit pattern {key!r} in choices: one of 0-9 * # expected")
                    continue
                if not isinstance(target, str):
                    ck.add(kline, f"{where}: choice {key!r} must name a node")
                    continue
                clean[key] = target
            opts["choices"] = clean
    if ntype == "collect":
        if "pattern" in opts:
            opts["pattern"] = _check_pattern(ck, opts["pattern"], kl("pattern"), where)
        if "field" in opts and opts["field"] not in ("contact_phone", "related_ticket_no"):
            ck.add(kl("field"), f"{where}: collect may store only into contact_phone or related_ticket_no, not {opts['field']!r}")
        if "empty_means" in opts and opts["empty_means"] not in ("caller_number",):
            ck.add(kl("empty_means"), f"{where}: empty_means must be 'caller_number'")
    if ntype == "set" and "fields" in opts:
        fields = opts["fields"]
        if not isinstance(fields, Mapping) or not fields:
            ck.add(kl("fields"), f"{where}: fields must be a mapping of call record fields")
            opts["fields"] = {}
        else:
            for name, value in fields.items():
                fline = _line_of(fields, name, kl("fields"))
                if name not in SETTABLE_FIELDS:
                    ck.add(fline, f"{where}: field {name!r} cannot be set by the IVR (allowed: {', '.join(SETTABLE_FIELDS)})")
                    continue
                spec = FIELDS_BY_ID[name]
                if spec.type == "enum" and value not in spec.values:
                    ck.add(fline, f"{where}: {name} = {value!r} is not one of {'、'.join(spec.values)}")
                if spec.type == "bool" and not isinstance(value, bool):
                    ck.add(fline, f"{where}: {name} must be true or false")
    if ntype == "queue":
        statuses = opts.get("statuses") or {}
        if not isinstance(statuses, Mapping):
            ck.add(kl("statuses"), f"{where}: statuses must map QUEUESTATUS values to node ids")
            statuses = {}
        for status in statuses:
            if status not in QUEUE_STATUSES:
                ck.add(_line_of(statuses, status, kl("statuses")),
                       f"{where}: unknown QUEUESTATUS {status!r} (known: {', '.join(QUEUE_STATUSES)})")
        opts["statuses"] = {k: v for k, v in statuses.items() if k in QUEUE_STATUSES and isinstance(v, str)}
        missing = [s for s in QUEUE_STATUSES if s not in opts["statuses"] and s != "CONTINUE"]
        if missing and "default" not in opts:
            ck.add(line, f"{where}: QUEUESTATUS {', '.join(missing)} lead nowhere: add them to statuses or set default")
        timeout = opts.get("timeout")
        if timeout is not None and timeout != "long_wait" and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0):
            ck.add(kl("timeout"), f"{where}: timeout must be seconds or 'long_wait' (got {timeout!r})")
        options = opts.get("options", "c")
        if not isinstance(options, str) or not re.fullmatch(r"[cCdhHinIrRtTwWkKxX]*", options) or "c" not in options:
            ck.add(kl("options"), f"{where}: Queue options {options!r} must be Queue option letters and include 'c' (continue after the agent hangs up)")
        if opts.get("announce_waiting") and not (opts.get("ahead_prompt") and opts.get("ahead_suffix_prompt")):
            ck.add(kl("announce_waiting"), f"{where}: announce_waiting needs ahead_prompt and ahead_suffix_prompt")
    if ntype == "ticket_status" and "statuses" in opts:
        statuses = opts["statuses"]
        values = FIELDS_BY_ID["status"].values
        parsed: dict[str, Prompt] = {}
        if not isinstance(statuses, Mapping):
            ck.add(kl("statuses"), f"{where}: statuses must map 办理状态 values to prompts")
        else:
            for status, raw_prompt in statuses.items():
                sline = _line_of(statuses, status, kl("statuses"))
                if status not in values:
                    ck.add(sline, f"{where}: {status!r} is not a 办理状态 ({'、'.join(values)})")
                    continue
                p = _prompt(ck, raw_prompt, sline, f"{where}.statuses.{status}")
                if p:
                    parsed[status] = p
            for status in values:
                if status not in statuses:
                    ck.add(kl("statuses"), f"{where}: no prompt for 办理状态 {status!r}")
        opts["statuses"] = parsed
    if ntype == "transfer":
        if opts.get("transfer_type") not in TRANSFER_TYPES:
            ck.add(kl("transfer_type"), f"{where}: transfer_type must be one of {'、'.join(TRANSFER_TYPES)}")
        if not isinstance(opts.get("target"), str) or not opts.get("target"):
            ck.add(kl("target"), f"{where}: target must be a Dial() destination such as Local/110@hotline-emergency")
    if ntype == "hangup" and "outcome" in opts and opts["outcome"] not in OUTCOMES:
        ck.add(kl("outcome"), f"{where}: outcome {opts['outcome']!r} is not one of {'、'.join(OUTCOMES)}")
    if ntype == "goto":
        if ("target" in opts) == ("flow" in opts):
            ck.add(line, f"{where}: goto needs exactly one of 'target' (a node) or 'flow' (another flow)")
    if ntype == "voicemail" and "ticket" in opts:
        ticket = opts["ticket"]
        if not isinstance(ticket, Mapping):
            ck.add(kl("ticket"), f"{where}: ticket must be a mapping of Appendix C ticket defaults")
        else:
            for name, value in ticket.items():
                tline = _line_of(ticket, name, kl("ticket"))
                spec = FIELDS_BY_ID.get(name)
                if spec is None:
                    ck.add(tline, f"{where}: ticket default {name!r} is not an Appendix C field")
                elif spec.type == "enum" and value not in spec.values:
                    ck.add(tline, f"{where}: ticket default {name} = {value!r} is not one of {'、'.join(spec.values)}")


def _reachable(flow_nodes: Mapping[str, Node], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        nid = todo.pop()
        if nid in seen or nid not in flow_nodes:
            continue
        seen.add(nid)
        todo.extend(flow_nodes[nid].targets().values())
    return seen


def _can_exit(flow_nodes: Mapping[str, Node]) -> set[str]:
    """Nodes from which some path reaches an exit (hangup, end, goto to another flow)."""
    exits = {nid for nid, n in flow_nodes.items()
             if n.type in TERMINAL_TYPES or (n.type == "goto" and n.opts.get("flow"))}
    changed = True
    while changed:
        changed = False
        for nid, n in flow_nodes.items():
            if nid not in exits and any(t in exits for t in n.targets().values()):
                exits.add(nid)
                changed = True
    return exits


def parse_flow(text: str, file: str) -> tuple[Flow | None, list[FlowProblem]]:
    """Parse and check one flow file's text. Returns the flow (None when unusable) and its problems."""
    ck = _Checker(file)
    loader = _Loader(text)
    loader.duplicate_keys = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        ck.add(mark.line + 1 if mark else 1, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return None, ck.problems
    finally:
        loader.dispose()
    for dline, key in loader.duplicate_keys:
        ck.add(dline, f"duplicate key {key!r}")
    if not isinstance(doc, Mapping):
        ck.add(1, "a flow file must be a mapping with flow, start and nodes")
        return None, ck.problems
    for key in doc:
        if key not in ("flow", "start", "nodes", "record", "description"):
            ck.add(_line_of(doc, key, 1), f"unknown top-level key {key!r}")
    for key in ("flow", "start", "nodes"):
        if key not in doc:
            ck.add(1, f"missing required key {key!r}")
    name = doc.get("flow")
    if name is not None and (not isinstance(name, str) or not FLOW_NAME_RE.match(name)):
        ck.add(_line_of(doc, "flow", 1), f"flow name {name!r} must be lower-case letters, digits and '-'")
    stem = Path(file).stem
    if isinstance(name, str) and name != stem:
        ck.add(_line_of(doc, "flow", 1), f"flow name {name!r} must match the file name {stem!r}")
    record = doc.get("record", "open")
    if record not in RECORD_MODES:
        ck.add(_line_of(doc, "record", 1), f"record must be one of {', '.join(RECORD_MODES)} (got {record!r})")
    raw_nodes = doc.get("nodes")
    nodes: dict[str, Node] = {}
    if raw_nodes is not None and (not isinstance(raw_nodes, Mapping) or not raw_nodes):
        ck.add(_line_of(doc, "nodes", 1), "nodes must be a non-empty mapping of node id to node")
        raw_nodes = {}
    for nid, raw in (raw_nodes or {}).items():
        nline = _line_of(raw_nodes, nid, 1)
        if not isinstance(nid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", nid):
            ck.add(nline, f"node id {nid!r} must be lower-case letters, digits and '_'")
            continue
        node = _parse_node(ck, nid, raw, nline)
        if node:
            nodes[nid] = node
    start = doc.get("start")
    if isinstance(start, str) and raw_nodes and start not in (raw_nodes or {}):
        ck.add(_line_of(doc, "start", 1), f"start node {start!r} does not exist")
    known = set(raw_nodes or {})
    for node in nodes.values():
        for where, target in node.targets().items():
            if target not in known:
                kind = "goto" if node.type == "goto" else where
                ck.add(node.line, f"node {node.id!r}: {kind} to a missing node {target!r}")
        if node.type not in TERMINAL_TYPES and node.type != "goto" and not node.next and node.type not in ("menu", "hours", "queue"):
            ck.add(node.line, f"node {node.id!r}: a {node.type} node needs 'next'")
    if isinstance(start, str) and start in nodes and not ck.problems:
        reach = _reachable(nodes, start)
        for nid, node in nodes.items():
            if nid not in reach:
                ck.add(node.line, f"node {nid!r} is unreachable from start {start!r}")
        exits = _can_exit(nodes)
        for nid in sorted(reach - exits, key=lambda n: nodes[n].line):
            ck.add(nodes[nid].line, f"node {nid!r}: loop without exit (no path from here reaches hangup, end or another flow)")
    if ck.problems or not isinstance(name, str) or not isinstance(start, str):
        return None, ck.problems
    description = doc.get("description", "")
    return Flow(name=name, file=file, start=start, record=record, nodes=nodes,
                description=description if isinstance(description, str) else ""), []


def load_flow(path: str | Path) -> Flow:
    path = Path(path)
    flow, problems = parse_flow(path.read_text(encoding="utf-8"), path.name)
    if problems or flow is None:
        raise FlowError(problems)
    return flow


def load_flows(directory: str | Path) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``directory``, all checked; raises :class:`FlowError` with every problem."""
    directory = Path(directory)
    problems: list[FlowProblem] = []
    flows: dict[str, Flow] = {}
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise FlowError([FlowProblem(str(directory), 0, "no flow files (*.yaml) found")])
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(FlowProblem(path.name, 0, f"cannot read: {exc}"))
            continue
        flow, found = parse_flow(text, path.name)
        problems.extend(found)
        if flow is not None:
            flows[flow.name] = flow
    for flow in flows.values():
        for node, target in flow.goto_flows():
            if target not in flows:
                problems.append(FlowProblem(flow.file, node.line, f"node {node.id!r}: goto to a missing flow {target!r}"))
    if problems:
        raise FlowError(problems)
    return flows


__all__ = ["Flow", "FlowError", "FlowProblem", "Node", "Prompt", "load_flow", "load_flows", "parse_flow",
           "NODE_SPECS", "QUEUE_STATUSES", "RECORD_MODES"]
