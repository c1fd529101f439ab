// Agent console: websocket screen pop, conditional ticket fields, ticket save over fetch.
// No inline script (CSP); server data arrives via data-* attributes and JSON. Text is set with
// textContent only; the one HTML insertion is the server-rendered (escaped) ticket form fragment.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ---------------------------------------------------------------- conditional fields
  function fieldValue(form, name) {
    var input = form.elements.namedItem(name);
    return input ? input.value : "";
  }

  function applyConditions(form) {
    form.querySelectorAll("[data-when-field]").forEach(function (box) {
      var values = JSON.parse(box.getAttribute("data-when-values") || "[]");
      var active = values.indexOf(fieldValue(form, box.getAttribute("data-when-field"))) !== -1;
      var input = box.querySelector("input, select, textarea");
      var hasValue = input && input.value !== "";
      box.classList.toggle("required", active);
      box.hidden = !(active || hasValue || box.classList.contains("has-error"));
    });
  }

  // ---------------------------------------------------------------- ticket save
  function showProblems(form, problems) {
    form.querySelectorAll(".errors").forEach(function (box) { box.textContent = ""; });
    form.querySelectorAll(".has-error").forEach(function (box) { box.classList.remove("has-error"); });
    var first = null;
    problems.forEach(function (p) {
      var box = form.querySelector('[data-error-for="' + CSS.escape(p.field) + '"]');
      if (!box) return;
      box.appendChild(el("p", "field-error", p.message));
      var wrap = box.closest(".field");
      if (wrap) { wrap.classList.add("has-error"); wrap.hidden = false; first = first || wrap; }
    });
    if (first) first.scrollIntoView({ block: "center" });
  }

  function showTicketNo(container, ticketNo) {
    var banner = container.querySelector(".ticket-banner");
    if (!banner) {
      banner = el("div", "ticket-banner");
      banner.setAttribute("role", "status");
      banner.appendChild(el("span", "label", "工单编号（请告知来电人）"));
      banner.appendChild(el("strong", "ticket-number"));
      container.insertBefore(banner, container.firstChild);
    }
    var strong = banner.querySelector(".ticket-number");
    strong.setAttribute("data-ticket-no", ticketNo);
    strong.textContent = "";
    [ticketNo.slice(0, 4), ticketNo.slice(4, 8), ticketNo.slice(8)].forEach(function (part, i) {
      if (i) strong.appendChild(document.createTextNode(" "));
      strong.appendChild(el("span", null, part));
    });
  }

  function showInfo(form, info) {
    var old = form.querySelector(".notes");
    if (old) old.remove();
    if (!info.length) return;
    var notes = el("div", "notes");
    notes.appendChild(el("p", null, "以下来电信息由系统在挂机后补全，不影响工单保存："));
    var ul = el("ul");
    info.forEach(function (p) { ul.appendChild(el("li", null, p.message)); });
    notes.appendChild(ul);
    form.querySelector(".actions").before(notes);
  }

  function submitTicket(form, event) {
    event.preventDefault();
    var data = {};
    new FormData(form).forEach(function (value, key) { if (key !== "csrf_token") data[key] = value; });
    var button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    var status = form.querySelector(".save-status") || el("span", "save-status");
    button.after(status);
    status.textContent = "保存中…";
    fetch(form.getAttribute("data-api"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), "Accept": "application/json" },
      body: JSON.stringify(data)
    }).then(function (resp) {
      return resp.json().then(function (body) { return { status: resp.status, body: body }; });
    }).then(function (res) {
      if (res.status === 200 || res.status === 201) {
        showProblems(form, []);
        showTicketNo(form.closest(".ticket"), res.body.ticket_no);
        showInfo(form, res.body.info || []);
        status.textContent = "已保存";
      } else if (res.status === 422) {
        showProblems(form, res.body.problems || []);
        status.textContent = "未保存：请按提示修改标红的字段";
      } else {
        status.textContent = "未保存：" + (res.body.message || res.status);
      }
    }).catch(function () {
      status.textContent = "未保存：网络错误，请重试";
    }).finally(function () { button.disabled = false; });
  }

  function wireForm(form) {
    if (form.dataset.wired) return;
    form.dataset.wired = "1";
    applyConditions(form);
    form.addEventListener("change", function () { applyConditions(form); });
    form.addEventListener("submit", function (e) { submitTicket(form, e); });
  }

  function wireForms(root) { root.querySelectorAll("form.ticket-form").forEach(wireForm); }

  // ---------------------------------------------------------------- screen pop
  function renderPop(msg) {
    var pop = document.getElementById("pop");
    pop.className = "pop";
    pop.textContent = "";
    pop.setAttribute("data-record-id", msg.record_id || "");
    var call = msg.call || {};
    var head = el("div", "pop-head");
    head.appendChild(el("span", "caller", call.caller_number || "未知号码"));
    if (call.confidential) head.appendChild(el("span", "badge", "保密"));
    if (msg.replay) head.appendChild(el("span", "badge muted", "通话中"));
    pop.appendChild(head);

    var facts = el("dl", "call-facts");
    function fact(label, value) { facts.appendChild(el("dt", null, label)); facts.appendChild(el("dd", null, value || "—")); }
    fact("来电记录编号", msg.record_id);
    fact("接入号码", call.called_number);
    fact("IVR路径", (msg.ivr_path || []).map(function (s) { return typeof s === "string" ? s : JSON.stringify(s); }).join(" → "));
    fact("诉求类型", msg.appeal_type);
    pop.appendChild(facts);

    var clip = el("div", "clip");
    clip.appendChild(el("h3", null, "来电人留言转写"));
    var text = el("p", "transcript", (msg.clip && msg.clip.transcript) || (msg.clip && msg.clip.recording_id ? "转写中…" : "无留言"));
    text.id = "clip-transcript";
    if (msg.clip && msg.clip.recording_id) text.setAttribute("data-recording-id", msg.clip.recording_id);
    clip.appendChild(text);
    pop.appendChild(clip);

    var hist = el("div", "history");
    hist.appendChild(el("h3", null, "该号码的历史来电（最近10次）"));
    if (!msg.history || !msg.history.length) {
      hist.appendChild(el("p", "empty", "无历史来电"));
    } else {
      var table = el("table", "grid");
      var hr = el("tr");
      ["来电时间", "呼叫结果", "工单编号", "诉求类型", "标题", "状态"].forEach(function (h) { hr.appendChild(el("th", null, h)); });
      table.appendChild(el("thead")).appendChild(hr);
      var body = table.appendChild(el("tbody"));
      msg.history.forEach(function (h) {
        var tr = el("tr");
        [(h.call_start_at || "").replace("T", " ").slice(0, 19), h.call_outcome, h.ticket_no, h.appeal_type, h.title, h.status]
          .forEach(function (v) { tr.appendChild(el("td", null, v || "—")); });
        body.appendChild(tr);
      });
      hist.appendChild(table);
    }
    pop.appendChild(hist);
    if (msg.ticket_url) loadTicketForm(msg.ticket_url);
  }

  function loadTicketForm(url) {
    var area = document.getElementById("ticket-area");
    fetch(url + "?fragment=1", { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok) throw new Error(String(resp.status));
      return resp.text();
    }).then(function (html) {
      area.innerHTML = html;  // server-rendered, every value escaped
      wireForms(area);
    }).catch(function (err) {
      area.textContent = "工单表单加载失败（" + err.message + "），请刷新页面";
    });
  }

  function transcriptReady(msg) {
    var pop = document.getElementById("pop");
    if (!pop || pop.getAttribute("data-record-id") !== String(msg.record_id || "")) return;
    var text = document.getElementById("clip-transcript");
    if (text) text.textContent = msg.transcript || "（转写为空）";
  }

  function connect(console_) {
    var status = document.getElementById("ws-status");
    var delay = 1000;
    function setState(state, label) { status.setAttribute("data-state", state); status.textContent = label; }
    function open() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(scheme + location.host + console_.getAttribute("data-ws"));
      ws.onopen = function () { delay = 1000; setState("open", "已连接 · 等待来电"); };
      ws.onmessage = function (e) {
        if (e.data === "pong") return;
        var msg = JSON.parse(e.data);
        if (msg.type === "screen_pop") { renderPop(msg); setState("open", "通话中"); }
        else if (msg.type === "transcript_ready") transcriptReady(msg);
      };
      ws.onclose = function (e) {
        if (e.code === 1008 || e.code === 4401) { setState("closed", "登录已失效，请重新登录"); return; }
        setState("closed", "连接已断开，" + Math.round(delay / 1000) + " 秒后重连");
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireForms(document);
    var console_ = document.getElementById("console");
    if (console_) connect(console_);
  });
})();
