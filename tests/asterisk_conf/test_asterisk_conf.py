"""asterisk-conf/: every file parses as Asterisk reads it, uses only Asterisk 20 applications/functions/options,
and every AGI URL names a shipped flow."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from agi.flowdef import load_flows
from agi.prompts import inventory

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "asterisk-conf"

# Dialplan applications of Asterisk 20 (core + the usual modules; `core show applications`).
ASTERISK20_APPS = frozenset("""
AddQueueMember ADSIProg AELSub AgentLogin AgentRequest AGI AlarmReceiver AMD Answer AttendedTransfer AudioSocket
Authenticate BackGround BackgroundDetect BlindTransfer Bridge BridgeAdd BridgeWait Busy CallCompletionCancel
CallCompletionRequest CELGenUserEvent ChangeMonitor ChanIsAvail ChannelRedirect ChanSpy ClearHash ConfBridge
Congestion ContinueWhile ControlPlayback DAHDIRAS DAHDIScan DAHDISendCallreroutingFacility DAHDISendKeypadFacility
DateTime DBdel DBdeltree DeadAGI Dial Dictate Directory DISA DumpChan EAGI Echo EndWhile Exec ExecIf ExecIfTime
ExitWhile ExtenSpy ExternalIVR Festival Flash FollowMe ForkCDR GetCPEID Gosub GosubIf Goto GotoIf GotoIfTime
Hangup HangupCauseClear IAX2Provision ICES ImportVar Incomplete JabberJoin JabberLeave JabberSend JabberSendGroup
JabberStatus JACK Log Macro MacroExclusive MacroExit MacroIf MailboxExists MessageSend Milliwatt MinivmAccMess
MinivmDelete MinivmGreet MinivmMWI MinivmNotify MinivmRecord MixMonitor Monitor Morsecode MP3Player MSet
MusicOnHold NBScat NoCDR NoOp ODBC_Commit ODBC_Rollback ODBCFinish Originate Page Park ParkAndAnnounce
ParkedCall PauseMonitor PauseQueueMember Pickup PickupChan Playback PlayTones PrivacyManager Proceeding Progress
Queue QueueLog QueueUpdate RaiseException Read ReadExten ReceiveFAX Record RemoveQueueMember ResetCDR
RetryDial Return Ringing SayAlpha SayAlphaCase SayDigits SayNumber SayPhonetic SayUnixTime SendDTMF SendFAX
SendImage SendText SendURL Set SetAMAFlags SIPAddHeader SIPDtmfMode SIPRemoveHeader SLAStation SLATrunk
SMS SoftHangup SpeechActivateGrammar SpeechBackground SpeechCreate SpeechDeactivateGrammar SpeechDestroy
SpeechLoadGrammar SpeechProcessingSound SpeechStart SpeechUnloadGrammar StackPop StartMusicOnHold Stasis
StatsD StopMixMonitor StopMonitor StopMusicOnHold StopPlayTones StreamEcho System TestClient TestServer
Transfer TryExec TrySystem UnpauseMonitor UnpauseQueueMember UserEvent Verbose VMAuthenticate VMSayName
VoiceMail VoiceMailMain VoiceMailPlayMsg Wait WaitDigit WaitExten WaitForCondition WaitForNoise WaitForRing
WaitForSilence WaitUntil While Zapateller
""".split())

ASTERISK20_FUNCTIONS = frozenset("""
AES_DECRYPT AES_ENCRYPT AGENT ARRAY AST_CONFIG AUDIOHOOK_INHERIT BASE64_DECODE BASE64_ENCODE BLACKLIST CALLCOMPLETION
CALLERID CALLERPRES CDR CHANNEL CHANNELS CHECKSIPDOMAIN CONNECTEDLINE CSV_QUOTE CURL CURLOPT CUT DB DB_DELETE
DB_EXISTS DB_KEYS DEC DENOISE DEVICE_STATE DIALGROUP DIALPLAN_EXISTS DUNDIQUERY DUNDIRESULT ENUMLOOKUP ENV EVAL
EXCEPTION EXISTS EXTENSION_STATE FIELDNUM FIELDQTY FILE FILE_COUNT_LINE FILE_FORMAT FILTER FRAME_TRACE GLOBAL
GROUP GROUP_COUNT GROUP_LIST GROUP_MATCH_COUNT HANGUPCAUSE HANGUPCAUSE_KEYS HASH HASHKEYS HINT IAXPEER IAXVAR
ICONV IF IFMODULE IFTIME IMPORT INC ISNULL JITTERBUFFER KEYPADHASH LEN LISTFILTER LOCAL LOCAL_PEEK LOCK MAILBOX_EXISTS
MASTER_CHANNEL MATH MD5 MEETME_INFO MESSAGE MESSAGE_DATA MINIVMACCOUNT MINIVMCOUNTER MUTEAUDIO ODBC PASSTHRU
PITCH_SHIFT PJSIP_AOR PJSIP_CONTACT PJSIP_DIAL_CONTACTS PJSIP_ENDPOINT PJSIP_HEADER PJSIP_MEDIA_OFFER
PJSIP_PARSE_URI PJSIP_SEND_SESSION_REFRESH POP PP_EACH_EXTENSION PUSH QUEUE_EXISTS QUEUE_GET_CHANNEL
QUEUE_MEMBER QUEUE_MEMBER_COUNT QUEUE_MEMBER_LIST QUEUE_MEMBER_PENALTY QUEUE_VARIABLES QUEUE_WAITING_COUNT
QUOTE RAND REALTIME REDIRECTING REGEX REPLACE SET SHA1 SHARED SHELL SHIFT SIP_HEADER SIPPEER SMDI_MSG
SMDI_MSG_RETRIEVE SORT SPEECH SPEECH_ENGINE SPEECH_GRAMMAR SPEECH_RESULTS_TYPE SPEECH_SCORE SPEECH_TEXT SPRINTF
SQL_ESC SRVQUERY SRVRESULT STACK_PEEK STAT STRFTIME STRPTIME STRREPLACE SYSINFO TALK_DETECT TESTTIME TIMEOUT
TOLOWER TOUPPER TRYLOCK TXTCIDNAME UNLOCK UNSHIFT URIDECODE URIENCODE VALID_EXTEN VERSION VM_INFO VOLUME
""".split())

QUEUE_GENERAL_KEYS = frozenset({"persistentmembers", "autofill", "monitor-type", "updatecdr", "shared_lastcall",
                                "negative_penalty_invalid", "log_membername_as_agent", "force_longest_waiting_caller",
                                "keepstats", "log_restricted_caller_id"})
QUEUE_KEYS = frozenset("""
musicclass announce strategy servicelevel context penaltymemberslimit timeout retry timeoutpriority weight
wrapuptime autopause autopausedelay autopausebusy autopauseunavail maxlen announce-frequency
min-announce-frequency periodic-announce-frequency random-periodic-announce relative-periodic-announce
announce-holdtime announce-position announce-position-limit announce-position-only-up announce-round-seconds
announce-to-first-user queue-youarenext queue-thereare queue-callswaiting queue-holdtime queue-minutes
queue-minute queue-seconds queue-thankyou queue-callerannounce queue-reporthold periodic-announce monitor-format
monitor-type joinempty leavewhenempty eventwhencalled eventmemberstatus reportholdtime ringinuse memberdelay
timeoutrestart defaultrule setinterfacevar setqueueentryvar setqueuevar membermacro membergosub member
""".split())
JOINEMPTY_VALUES = frozenset({"paused", "penalty", "inuse", "ringing", "unavailable", "invalid", "unknown", "wrapup",
                              "yes", "no", "strict", "loose"})
ASTERISK20_MODULES = frozenset({"pbx_config.so", "res_agi.so", "app_queue.so", "app_mixmonitor.so",
                                "res_musiconhold.so", "app_stack.so", "func_channel.so", "func_logic.so",
                                "chan_pjsip.so", "res_pjsip.so", "app_dial.so", "app_playback.so", "func_strings.so",
                                "app_verbose.so", "cdr_csv.so", "cel_custom.so", "res_monitor.so", "app_macro.so"})


def strip_comment(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out.append(line[i:i + 2])
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).rstrip()


def parse_ini(path: Path) -> dict[str, list[tuple[int, str, str]]]:
    """Asterisk config: [section] then `key = value` / `key => value` lines (comments start with ';')."""
    sections: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    current = None
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = strip_comment(raw).strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([A-Za-z0-9_\-]+)\](\(.*\))?", line)
        if m:
            current = m.group(1)
            assert current not in sections, f"{path.name}:{no}: section [{current}] defined twice"
            sections[current] = []
            continue
        assert current is not None, f"{path.name}:{no}: line outside a section"
        m = re.fullmatch(r"([A-Za-z0-9_\-]+)\s*=>?\s*(.*)", line)
        assert m, f"{path.name}:{no}: not `key = value`: {line!r}"
        sections[current].append((no, m.group(1), m.group(2)))
    return dict(sections)


def balanced(text: str) -> bool:
    pairs = {")": "(", "}": "{", "]": "["}
    stack: list[str] = []
    for ch in text:
        if ch in "({[":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


class Step:
    def __init__(self, context: str, exten: str, priority: int, label: str | None, app: str, args: str, line: int):
        self.context, self.exten, self.priority, self.label = context, exten, priority, label
        self.app, self.args, self.line = app, args, line


def parse_dialplan() -> tuple[dict[str, str], list[Step]]:
    sections = parse_ini(CONF / "extensions.conf")
    globals_ = {k: v for _, k, v in sections.pop("globals", [])}
    steps: list[Step] = []
    for context, lines in sections.items():
        exten, prio = None, 0
        for no, key, value in lines:
            assert key in ("exten", "same", "include"), f"extensions.conf:{no}: unexpected {key!r}"
            if key == "include":
                continue
            if key == "exten":
                m = re.fullmatch(r"(_?[A-Za-z0-9.*#!\[\]\-]+|[a-z]+),(\d+|n)(?:\(([a-z0-9_]+)\))?,(.*)", value)
                assert m, f"extensions.conf:{no}: bad exten line {value!r}"
                exten = m.group(1)
                assert m.group(2) == "1", f"extensions.conf:{no}: an extension must start at priority 1"
                prio = 1
            else:
                assert exten is not None, f"extensions.conf:{no}: `same =>` without a preceding exten"
                m = re.fullmatch(r"(n)(?:\(([a-z0-9_]+)\))?,(.*)", value)
                assert m, f"extensions.conf:{no}: bad same line {value!r}"
                prio += 1
            label = m.group(3) if key == "exten" else m.group(2)
            body = m.group(4) if key == "exten" else m.group(3)
            am = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)\((.*)\)", body)
            assert am, f"extensions.conf:{no}: application call expected: {body!r}"
            assert balanced(am.group(2)), f"extensions.conf:{no}: unbalanced brackets in {body!r}"
            steps.append(Step(context, exten, prio, label, am.group(1), am.group(2), no))
    return globals_, steps


def test_every_application_exists_in_asterisk_20():
    _, steps = parse_dialplan()
    assert steps
    unknown = {(s.line, s.app) for s in steps if s.app not in ASTERISK20_APPS}
    assert not unknown


def test_every_function_exists_in_asterisk_20():
    text = (CONF / "extensions.conf").read_text(encoding="utf-8")
    body = "\n".join(strip_comment(l) for l in text.splitlines())
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\(", body))
    assert used, "expected CHANNEL(), IF() …"
    assert used <= ASTERISK20_FUNCTIONS, used - ASTERISK20_FUNCTIONS


def test_gotoif_labels_and_goto_targets_exist():
    _, steps = parse_dialplan()
    labels = {(s.context, s.exten, s.label) for s in steps if s.label}
    extens = {(s.context, s.exten) for s in steps}
    checked = 0
    for s in steps:
        if s.app == "GotoIf":
            m = re.fullmatch(r"\$\[(.+)\]\?([a-z0-9_]+)(?::([a-z0-9_]+))?", s.args)
            assert m, f"line {s.line}: GotoIf($[expr]?label[:label]) expected, got {s.args!r}"
            for label in filter(None, m.groups()[1:]):
                assert (s.context, s.exten, label) in labels, f"line {s.line}: label {label!r} missing"
                checked += 1
        if s.app == "Goto":
            ctx, ext, prio = s.args.split(",")
            assert (ctx, ext) in extens and prio == "1", f"line {s.line}: Goto target {s.args!r} missing"
            checked += 1
    assert checked >= 3


def test_expressions_are_well_formed():
    _, steps = parse_dialplan()
    for s in steps:
        for expr in re.findall(r"\$\[(.*?)\]\?", s.args):
            assert re.fullmatch(r'"\$\{[A-Z_]+\}" (=|!=) "[^"]*"', expr), f"line {s.line}: {expr!r}"
        if "${IF(" in s.args:
            assert re.search(r"\$\{IF\(\$\[.+\]\?[^:]*:[^)]*\)\}", s.args), f"line {s.line}: IF syntax {s.args!r}"


def test_agi_urls_name_shipped_flows():
    globals_, steps = parse_dialplan()
    flows = load_flows(ROOT / "ivr_flows")
    base = globals_["HOTLINE_AGI"]
    assert re.fullmatch(r"agi://[\w.\-]+:\d+", base)
    agi = [s for s in steps if s.app == "AGI"]
    assert len(agi) >= 4
    for s in agi:
        m = re.fullmatch(r"\$\{HOTLINE_AGI\}/([a-z][a-z0-9\-]*)(?:,.*)?", s.args)
        assert m, f"line {s.line}: AGI URL must be ${{HOTLINE_AGI}}/<flow>: {s.args!r}"
        assert m.group(1) in flows, f"line {s.line}: no flow named {m.group(1)!r}"
        if s.exten == "h":
            assert flows[m.group(1)].record == "end", "the h extension runs on a dead channel: call-end only"


def test_inbound_records_both_legs_and_falls_back_to_the_queue():
    _, steps = parse_dialplan()
    inbound = [s for s in steps if s.context == "hotline-inbound" and s.exten == "12345"]
    apps = [s.app for s in inbound]
    mix = next(s for s in inbound if s.app == "MixMonitor")
    assert "r(${CHANNEL(linkedid)}-in.wav)" in mix.args and "t(${CHANNEL(linkedid)}-out.wav)" in mix.args
    assert apps.index("Answer") < apps.index("MixMonitor") < apps.index("AGI")
    fallback_queue = next(s for s in inbound if s.app == "Queue")
    assert apps.index("AGI") < apps.index("Queue") and fallback_queue.args.split(",")[1] == "c"
    assert any(s.app == "GotoIf" and "HL_FLOW_DONE" in s.args for s in inbound)
    assert any(s.exten == "h" for s in steps if s.context == "hotline-inbound")
    gosub = [s for s in steps if s.context == "hotline-agent-connect"]
    assert [s.app for s in gosub] == ["AGI", "Return"]


def test_queues_conf_options_and_references():
    sections = parse_ini(CONF / "queues.conf")
    for no, key, _ in sections["general"]:
        assert key in QUEUE_GENERAL_KEYS, f"queues.conf:{no}: unknown [general] option {key!r}"
    q = sections["hotline"]
    opts = {k: v for _, k, v in q}
    for no, key, _ in q:
        assert key in QUEUE_KEYS, f"queues.conf:{no}: unknown queue option {key!r}"
    _, steps = parse_dialplan()
    assert opts["membergosub"] in {s.context for s in steps}
    assert opts["setinterfacevar"] == opts["setqueueentryvar"] == "yes"
    assert opts["timeoutpriority"] == "app"
    for key in ("joinempty", "leavewhenempty"):
        assert set(opts[key].split(",")) <= JOINEMPTY_VALUES
    moh = parse_ini(CONF / "musiconhold.conf")
    assert opts["musicclass"] in moh
    prompts = inventory(load_flows(ROOT / "ivr_flows"))
    for key in ("queue-thereare", "queue-callswaiting"):
        assert opts[key] in prompts, f"{key} must be a prompt `hotline prompts build` makes"
    from config import load_settings
    assert "hotline" == load_settings(environ={}).queue.default_queue


def test_musiconhold_and_modules():
    moh = parse_ini(CONF / "musiconhold.conf")
    for name, lines in moh.items():
        opts = {k: v for _, k, v in lines}
        assert opts.get("mode") in ("files", "custom", "playlist"), name
        assert opts.get("directory"), name
    modules = parse_ini(CONF / "modules.conf")["modules"]
    required = {v for _, k, v in modules if k == "require"}
    assert {"res_agi.so", "app_queue.so", "app_mixmonitor.so", "res_musiconhold.so", "app_stack.so"} <= required
    assert required <= ASTERISK20_MODULES


@pytest.mark.parametrize("name", ["extensions.conf", "queues.conf", "musiconhold.conf", "modules.conf"])
def test_files_are_plain_utf8_without_tabs_in_values(name):
    data = (CONF / name).read_bytes()
    data.decode("utf-8")
    assert b"\r" not in data
