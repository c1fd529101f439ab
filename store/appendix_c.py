"""DB11/T 2021-2022 Appendix C (来电记录要求) encoded in code: field ids, Chinese names, types, enums, requirements.

This is the project's own copy of the contract in ``shared/spec/appendix_c.yaml``; a test compares the two
so they cannot drift apart. Requirements are parsed once into :class:`Requirement` objects so the
validator never parses strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

APPENDIX_C_VERSION = 1

FIELD_TYPES = frozenset({"string", "text", "int", "bool", "datetime", "enum", "list", "object"})


@dataclass(frozen=True)
class Requirement:
    """When a field must be present.

    ``kind`` is always / answered / queued / ticket / optional / when. For ``when`` the field must be
    present if ``record[cond_field]`` is one of ``cond_values`` (booleans compared as booleans).
    """

    kind: str
    cond_field: str | None = None
    cond_values: tuple[str | bool, ...] = ()
    source: str = ""

    @classmethod
    def parse(cls, text: str) -> "Requirement":
        text = text.strip()
        if text in ("always", "answered", "queued", "ticket", "optional"):
            return cls(kind=text, source=text)
        m = re.fullmatch(r"when:\s*(\w+)\s*(==|in)\s*(.+)", text)
        if not m:
            raise ValueError(f"unknown requirement {text!r}")
        name, op, rhs = m.groups()
        if op == "==":
            values = (rhs.strip(),)
        else:
            inner = rhs.strip()
            if not (inner.startswith("[") and inner.endswith("]")):
                raise ValueError(f"bad value list in requirement {text!r}")
            values = tuple(v.strip() for v in inner[1:-1].split(","))
        parsed: tuple[str | bool, ...] = tuple({"true": True, "false": False}.get(v, v) for v in values)
        return cls(kind="when", cond_field=name, cond_values=parsed, source=text)


@dataclass(frozen=True)
class FieldSpec:
    id: str
    zh: str
    group: str
    type: str
    required_text: str
    values: tuple[str, ...] = ()
    required: Requirement = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.id}: unknown type {self.type!r}")
        object.__setattr__(self, "required", Requirement.parse(self.required_text))

    @property
    def label(self) -> str:
        """The name shown to people: ``来电号码(caller_number)``."""
        return f"{self.zh}({self.id})"


FIELDS: tuple[FieldSpec, ...] = (
    # 呼叫信息 - written by the telephony side
    FieldSpec("record_id", "来电记录编号", "call", "string", "always"),
    FieldSpec("ticket_no", "工单编号", "call", "string", "ticket"),
    FieldSpec("channel", "受理渠道", "call", "enum", "always", values=("电话", "网站", "微信", "移动端APP", "小程序", "短信", "邮件", "110转入", "其他热线转入")),
    FieldSpec("caller_number", "来电号码", "call", "string", "always"),
    FieldSpec("called_number", "接入号码", "call", "string", "always"),
    FieldSpec("call_start_at", "来电时间", "call", "datetime", "always"),
    FieldSpec("ivr_path", "IVR路径", "call", "list", "always"),
    FieldSpec("queue_id", "话务组", "call", "string", "queued"),
    FieldSpec("queue_enter_at", "进入排队时间", "call", "datetime", "queued"),
    FieldSpec("answered_at", "应答时间", "call", "datetime", "answered"),
    FieldSpec("ended_at", "挂机时间", "call", "datetime", "always"),
    FieldSpec("wait_seconds", "等待时长", "call", "int", "queued"),
    FieldSpec("talk_seconds", "通话时长", "call", "int", "answered"),
    FieldSpec("call_outcome", "呼叫结果", "call", "enum", "always", values=("人工接通", "IVR放弃", "排队放弃", "排队超时", "留言", "非工作时段", "系统失败")),
    FieldSpec("hangup_party", "挂机方", "call", "enum", "always", values=("诉求人", "坐席", "系统")),
    FieldSpec("agent_id", "坐席工号", "call", "string", "answered"),
    FieldSpec("language", "服务语言", "call", "enum", "always", values=("普通话", "方言", "少数民族语言", "外语")),
    FieldSpec("recording", "录音文件", "call", "object", "answered"),
    FieldSpec("transfer_type", "转接方式", "call", "enum", "always", values=("无", "转接", "三方通话", "一键转110", "转其他紧急热线")),
    FieldSpec("transfer_target", "转接对象", "call", "string", "when: transfer_type in [转接, 三方通话, 一键转110, 转其他紧急热线]"),
    FieldSpec("callback_required", "漏接回拨", "call", "bool", "always"),
    # 诉求人
    FieldSpec("claimant_type", "诉求人类型", "claimant", "enum", "ticket", values=("自然人", "法人", "非法人组织")),
    FieldSpec("claimant_name", "姓名或称呼", "claimant", "string", "when: is_anonymous == false"),
    FieldSpec("gender", "性别", "claimant", "enum", "optional", values=("男", "女", "未知")),
    FieldSpec("contact_phone", "联系电话", "claimant", "string", "ticket"),
    FieldSpec("claimant_address", "联系地址", "claimant", "string", "optional"),
    FieldSpec("org_name", "单位名称", "claimant", "string", "when: claimant_type in [法人, 非法人组织]"),
    FieldSpec("is_anonymous", "是否匿名", "claimant", "bool", "ticket"),
    FieldSpec("confidential", "是否保密", "claimant", "bool", "ticket"),
    FieldSpec("followup_pref", "回访方式", "claimant", "enum", "optional", values=("电话", "短信", "网络", "不需回访")),
    # 诉求内容
    FieldSpec("appeal_type", "诉求类型", "appeal", "enum", "ticket", values=("咨询", "求助", "投诉", "举报", "建议", "表扬", "其他")),
    FieldSpec("category_code", "诉求分类", "appeal", "string", "ticket"),
    FieldSpec("title", "诉求标题", "appeal", "string", "ticket"),
    FieldSpec("content", "诉求内容", "appeal", "text", "ticket"),
    FieldSpec("incident_address", "事发地点", "appeal", "string", "when: appeal_type in [求助, 投诉, 举报]"),
    FieldSpec("district", "所属区", "appeal", "string", "when: appeal_type in [求助, 投诉, 举报]"),
    FieldSpec("subdistrict", "街道乡镇", "appeal", "string", "optional"),
    FieldSpec("incident_time", "事发时间", "appeal", "datetime", "optional"),
    FieldSpec("subject_entity", "被反映对象", "appeal", "string", "optional"),
    FieldSpec("urgency", "紧急程度", "appeal", "enum", "ticket", values=("一般", "紧急", "特急")),
    FieldSpec("related_ticket_no", "关联工单", "appeal", "string", "optional"),
    FieldSpec("accepted", "是否受理", "appeal", "bool", "ticket"),
    FieldSpec("rejection_reason", "不予受理原因", "appeal", "text", "when: accepted == false"),
    # 处置
    FieldSpec("disposition", "处置方式", "handling", "enum", "ticket", values=("直接答复", "派单", "三方通话办结", "转110或紧急热线", "告知其他渠道", "不予受理")),
    FieldSpec("answer_text", "答复内容", "handling", "text", "when: disposition == 直接答复"),
    FieldSpec("handler_unit", "承办单位", "handling", "string", "when: disposition == 派单"),
    FieldSpec("due_at", "办理时限", "handling", "datetime", "when: disposition == 派单"),
    FieldSpec("status", "办理状态", "handling", "enum", "ticket", values=("已受理", "直接办结", "已派单", "办理中", "已反馈", "已办结", "已归档")),
    FieldSpec("satisfaction", "满意度", "handling", "enum", "optional", values=("满意", "基本满意", "不满意")),
    FieldSpec("satisfaction_source", "评价来源", "handling", "enum", "when: satisfaction in [满意, 基本满意, 不满意]", values=("IVR评价", "回访")),
    # 录音转写与质检
    FieldSpec("transcript", "录音转写", "evidence", "object", "optional"),
    FieldSpec("qa_review", "质检评分", "evidence", "object", "optional"),
)

FIELDS_BY_ID: dict[str, FieldSpec] = {f.id: f for f in FIELDS}
FIELD_IDS: tuple[str, ...] = tuple(f.id for f in FIELDS)

# Enumerations the rest of the code refers to by name.
CALL_OUTCOMES = FIELDS_BY_ID["call_outcome"].values
HANGUP_PARTIES = FIELDS_BY_ID["hangup_party"].values
APPEAL_TYPES = FIELDS_BY_ID["appeal_type"].values
SATISFACTION_VALUES = FIELDS_BY_ID["satisfaction"].values
TICKET_STATUSES = FIELDS_BY_ID["status"].values

OUTCOME_ANSWERED = "人工接通"
OUTCOME_IVR_ABANDONED = "IVR放弃"
OUTCOME_QUEUE_ABANDONED = "排队放弃"
OUTCOME_QUEUE_TIMEOUT = "排队超时"
OUTCOME_VOICEMAIL = "留言"
OUTCOME_AFTER_HOURS = "非工作时段"
OUTCOME_SYSTEM_FAILURE = "系统失败"

# Outcomes that put the call on the missed-call callback list (callback_required, KPI 漏接回拨).
CALLBACK_OUTCOMES = frozenset({OUTCOME_IVR_ABANDONED, OUTCOME_QUEUE_ABANDONED, OUTCOME_QUEUE_TIMEOUT,
                               OUTCOME_VOICEMAIL, OUTCOME_SYSTEM_FAILURE})
# Appeal types whose record needs incident_address and district (the "when:" rule of those two fields).
LOCATION_APPEALS = frozenset(str(v) for v in FIELDS_BY_ID["incident_address"].required.cond_values)

# Members of the object-typed fields (documented JSON members).
RECORDING_MEMBERS = ("uri", "sha256", "duration_seconds", "channels", "sample_rate")
TRANSCRIPT_MEMBERS = ("model", "channels")
QA_REVIEW_MEMBERS = ("reviewer", "items", "total", "comment", "reviewed_at")
