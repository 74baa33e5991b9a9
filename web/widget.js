/*
 * Kommunchatt citizen widget. One tag on any page of any site:
 *   <script src="https://HOST/widget.js" data-municipality="ekby" data-lang="sv" defer></script>
 *
 * Why it is built this way:
 * - Shadow DOM keeps the host page's styles out (and ours out of the page); `:host { all: initial }`
 *   stops inherited fonts and colours too.
 * - Every text from a citizen, the bot or an agent is inserted with textContent: never as HTML.
 * - The server's transcript is the truth. Messages are shown by their server id (deduplicated and in
 *   order); a message being sent is shown as pending until the server has it. Each message has a
 *   client_id, so resending after a dropped connection never doubles it. The session id and unsent
 *   messages live in localStorage: a page reload or a new tab continues the same conversation.
 * - The municipality's name, logo and colours and its top topics come from /chat/config.
 * - Changing language relabels the controls only: the message log is never rebuilt, so a screen
 *   reader does not hear the whole history again.
 * - The WebSocket reconnects with ?after=<last id>, so nothing pushed while it was down is lost.
 */
(function () {
  "use strict";
  if (window.__kommunchatt) return; // the tag twice on a page: one widget
  window.__kommunchatt = true;

  var script = document.currentScript ||
    Array.prototype.slice.call(document.querySelectorAll("script[src*='widget.js']")).pop();
  var HOST = new URL(script.src, location.href).origin;
  var API = HOST + "/api/v1";
  var MUNICIPALITY = script.getAttribute("data-municipality") || "default";
  var LANGS = ["sv", "en", "ar", "so", "fa", "fi", "ku", "tr", "pl", "uk", "da", "no"];
  var NAMES = {
    sv: "Svenska", en: "English", ar: "العربية", so: "Soomaali", fa: "فارسی", fi: "Suomi", ku: "Kurdî",
    tr: "Türkçe", pl: "Polski", uk: "Українська", da: "Dansk", no: "Norsk"
  };
  var RTL = { ar: true, fa: true };
  var LOCALE = { no: "nb", ku: "ku-Latn" };
  var KEY = "kommunchatt:" + HOST + ":" + MUNICIPALITY;
  // The quiet "did this help?" under an answer (actions/common.py HELPED / NOT_HELPED).
  var FEEDBACK_PAYLOADS = ['/affirm{"feedback":"yes"}', '/deny{"feedback":"no"}'];
  var LEAVE_MESSAGE = '/request_human{"callback":"yes"}'; // actions/common.py LEAVE_MESSAGE
  var THUMB_ICONS = ["\uD83D\uDC4D", "\uD83D\uDC4E"];
  var NOTICE_POLL_MS = 20000;
  var MAX_CHARS = 2000;

  // ------------------------------------------------------------------ storage
  function load(area, key) {
    try { return JSON.parse(window[area].getItem(key) || "null"); } catch (e) { return null; }
  }
  function save(area, key, value) {
    try { window[area].setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
  }
  var saved = load("localStorage", KEY) || load("sessionStorage", KEY) || {};
  function initialLanguage() {
    var wanted = [load("localStorage", KEY + ":lang"), script.getAttribute("data-lang"),
      (document.documentElement.lang || "").slice(0, 2).toLowerCase()];
    for (var i = 0; i < wanted.length; i++) if (LANGS.indexOf(wanted[i]) >= 0) return wanted[i];
    return "sv";
  }

  var state = {
    session: saved.session || null,
    lang: initialLanguage(),
    open: !!saved.open,
    pending: saved.pending || [],     // [{client_id, text, display, status}]
    synced: 0,                        // last id of the in-order streams (transcript, WebSocket)
    messages: {},                     // id -> message
    conv: "bot",
    queue: null,
    strings: {},
    unread: 0,
    notices: [],
    config: null                      // the municipality's name, logo, colours and topics
  };
  function persist() {
    save("localStorage", KEY, {
      session: state.session, open: state.open,
      pending: state.pending.map(function (p) { return { client_id: p.client_id, text: p.text, display: p.display }; })
    });
  }
  function t(key, vars) {
    var text = state.strings[key] || key;
    Object.keys(vars || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(vars[k])); });
    return text;
  }
  function uid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  // ------------------------------------------------------------------ HTTP
  function api(method, path, body) {
    var options = { method: method, headers: {}, credentials: "omit" };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(API + path, options).then(function (response) {
      if (!response.ok) {
        var error = new Error("HTTP " + response.status);
        error.status = response.status;
        throw error;
      }
      return response.status === 204 ? null : response.json();
    });
  }

  // ------------------------------------------------------------------ DOM
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] === true) node.setAttribute(k, "");
      else if (attrs[k] !== false && attrs[k] != null) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  var CSS = [
    ":host{all:initial}",
    ".kc{--kc-primary:#0b4f8a;--kc-primary-dark:#083b68;--kc-on-primary:#fff;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;font-size:16px;line-height:1.45;color:#1b1b1b;}",
    ".kc *{box-sizing:border-box}",
    ".vh{position:absolute!important;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;margin:-1px;padding:0;border:0}",
    "button,select,textarea{font:inherit;color:inherit}",
    ":focus-visible{outline:3px solid #1b1b1b;outline-offset:2px;box-shadow:0 0 0 5px #fff}",
    ".launcher{position:fixed;bottom:16px;right:16px;z-index:2147483000;display:flex;align-items:center;gap:8px;",
    "min-height:48px;padding:10px 18px;border:2px solid #fff;border-radius:24px;background:var(--kc-primary);color:var(--kc-on-primary);cursor:pointer;",
    "box-shadow:0 4px 14px rgba(0,0,0,.3);font-weight:600}",
    ".launcher:hover{background:var(--kc-primary-dark)}",
    ".launcher svg{width:22px;height:22px;flex:none}",
    ".badge{min-width:22px;padding:0 6px;border-radius:11px;background:#fff;color:#1b1b1b;font-size:14px;text-align:center}",
    ".panel{position:fixed;bottom:80px;right:16px;z-index:2147483001;display:flex;flex-direction:column;",
    "width:min(400px,calc(100vw - 32px));height:min(620px,calc(100vh - 100px));background:#fff;border:1px solid #6b6b6b;",
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}",
    ".panel[hidden]{display:none}",
    // The corner follows the host page's direction, not the chat language: switching language never moves it.
    ".kc.host-rtl .launcher,.kc.host-rtl .panel{right:auto;left:16px}",
    "@media (max-width:480px),(max-height:520px){.kc .panel,.kc.host-rtl .panel{inset:0;width:100%;height:100%;border-radius:0;border:0}",
    ".kc.is-open .launcher{display:none}}",
    "header{display:flex;flex:none;flex-wrap:nowrap;align-items:center;gap:8px;padding:10px 12px;background:var(--kc-primary);color:var(--kc-on-primary)}",
    "header img{flex:none;max-height:32px;max-width:64px;object-fit:contain;background:#fff;border-radius:4px;padding:2px}",
    "h2{flex:1 1 auto;min-width:0;margin:0;font-size:17px;font-weight:700;overflow-wrap:anywhere}",
    "header select{flex:none;max-width:8.5em;min-height:36px;padding:4px;border:1px solid #fff;border-radius:6px;background:#fff;color:#1b1b1b}",
    ".icon{flex:none;min-width:40px;min-height:40px;border:1px solid currentColor;border-radius:6px;background:transparent;color:inherit;cursor:pointer;font-size:20px;line-height:1}",
    ".icon:hover{background:var(--kc-primary-dark)}",
    ".notices{flex:none;margin:0;padding:8px 12px;background:#fff4ce;border-bottom:1px solid #8a6d00;color:#1b1b1b;max-height:35%;overflow:auto}",
    ".notices h3{margin:0 0 4px;font-size:15px}",
    ".notices ul{margin:0;padding-inline-start:18px}",
    ".notices li{margin:2px 0}",
    ".notices small{display:block;color:#4a4a4a}",
    ".status{padding:0 12px;font-size:14px;color:#1b1b1b;background:#e8f0f8}",
    ".status:not(:empty){padding:6px 12px;border-bottom:1px solid #c6d4e1}",
    ".log{flex:1 1 auto;min-height:0;margin:0;padding:12px;list-style:none;overflow-y:auto;background:#fafafa}",
    ".log .msg{display:flex;flex-direction:column;margin:0 0 10px}",
    ".bubble{max-width:88%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}",
    ".bot .bubble,.agent .bubble{align-self:flex-start;background:#e9eef3;border-start-start-radius:3px}",
    ".agent .bubble{background:#e6f2e8}",
    ".citizen .bubble{align-self:flex-end;background:var(--kc-primary);color:var(--kc-on-primary);border-start-end-radius:3px}",
    ".citizen .bubble a{color:inherit}",
    ".system .bubble{align-self:center;background:transparent;color:#4a4a4a;font-size:14px;font-style:italic}",
    ".who{font-size:13px;color:#4a4a4a;margin:0 4px 2px}",
    ".citizen .who{align-self:flex-end}",
    ".pending .bubble{opacity:.85;border:2px dashed var(--kc-primary);background:#fff;color:#1b1b1b}",
    ".pending small{align-self:flex-end;font-size:13px;color:#4a4a4a}",
    ".failed small{color:#a4000f}",
    "a{color:var(--kc-primary);text-decoration:underline}",
    ".choices{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
    ".choices button{min-height:40px;padding:6px 12px;border:2px solid var(--kc-primary);border-radius:18px;background:#fff;color:var(--kc-primary);cursor:pointer;text-align:start}",
    ".choices button:hover{background:#e8f0f8}",
    ".choices button:disabled{border-color:#767676;color:#4a4a4a;cursor:default;background:#f2f2f2}",
    ".typing{padding:0 12px 6px;font-size:14px;color:#4a4a4a;background:#fafafa}",
    ".dots span{display:inline-block;width:6px;height:6px;margin:0 2px;border-radius:50%;background:#4a4a4a;animation:kcb 1.2s infinite}",
    ".dots span:nth-child(2){animation-delay:.2s}.dots span:nth-child(3){animation-delay:.4s}",
    "@keyframes kcb{0%,80%,100%{opacity:.25}40%{opacity:1}}",
    "@media (prefers-reduced-motion:reduce){.dots span{animation:none}}",
    ".thumbs{display:flex;align-items:center;gap:4px;margin-top:2px;font-size:13px;color:#4a4a4a}",
    ".thumbs button{min-width:36px;min-height:32px;padding:2px 6px;border:1px solid #9a9a9a;border-radius:16px;background:#fff;cursor:pointer;font-size:16px;line-height:1}",
    ".thumbs button:hover{background:#e8f0f8}",
    ".thumbs button:disabled{opacity:.55;cursor:default}",
    ".thumbs button[aria-pressed=true]{border-color:var(--kc-primary);background:#e8f0f8;opacity:1}",
    ".topics{margin:4px 0 10px}",
    ".topics h3{margin:0 0 4px;font-size:14px;font-weight:600;color:#4a4a4a}",
    ".bar{display:flex;gap:8px;padding:8px 12px;border-top:1px solid #c6c6c6;background:#fff}",
    ".bar{flex-wrap:wrap}",
    ".human{min-height:40px;padding:6px 12px;border:2px solid var(--kc-primary);border-radius:6px;background:#fff;color:var(--kc-primary);cursor:pointer;font-weight:600}",
    ".human:disabled{border-color:#767676;color:#4a4a4a;cursor:default}",
    ".human[hidden]{display:none}",
    ".compose{display:flex;gap:8px;align-items:flex-end;padding:8px 12px 12px;background:#fff}",
    ".compose label{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    "textarea{flex:1 1 auto;min-height:44px;max-height:120px;padding:8px;border:2px solid #6b6b6b;border-radius:8px;resize:vertical;background:#fff;color:#1b1b1b}",
    ".send{min-height:44px;padding:8px 16px;border:0;border-radius:8px;background:var(--kc-primary);color:var(--kc-on-primary);cursor:pointer;font-weight:600}",
    ".send:hover{background:var(--kc-primary-dark)}",
    ".error{padding:0 12px;color:#a4000f;font-size:14px}",
    ".privacy{margin:0;padding:4px 12px 0;font-size:13px;line-height:1.35;color:#4a4a4a;background:#fff}",
    ".privacy a{color:#0b4f8a}",
    ".rating{display:block;padding:6px 0;align-self:stretch}",
    ".rating fieldset{border:0;margin:0;padding:0}",
    ".stars{display:flex;gap:6px}",
    ".star{position:relative;display:inline-flex}",
    ".star input{position:absolute;opacity:0;width:44px;height:44px;margin:0;cursor:pointer}",
    ".star span[aria-hidden]{display:inline-flex;align-items:center;justify-content:center;width:44px;height:44px;border:2px solid var(--kc-primary);border-radius:50%;background:#fff;color:var(--kc-primary);font-weight:700}",
    ".star input:checked+span{background:var(--kc-primary);color:var(--kc-on-primary)}",
    ".star input:focus-visible+span{outline:3px solid #1b1b1b;outline-offset:2px}",
    ".rating .lbl{display:block;margin:6px 0 2px;font-size:14px}",
    ".scale{display:flex;justify-content:space-between;max-width:260px;margin-top:2px;font-size:13px;color:#4a4a4a}",
    ".rating legend{padding:0;margin:0 0 4px;font-size:14px;font-weight:600}",
    ".rating textarea{width:100%;min-height:44px;margin-bottom:6px}",
    ".thanks{margin:4px 0;font-size:14px}"
  ].join("\n");

  var host = h("div", { id: "kommunchatt", "data-municipality": MUNICIPALITY });
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(h("style", { text: CSS }));

  var ui = {};
  ui.launcherText = h("span");
  ui.badge = h("span", { "class": "badge", hidden: true, "aria-hidden": "true" });
  ui.launcherExtra = h("span", { "class": "vh" });
  ui.launcher = h("button", { "class": "launcher", type: "button", "aria-expanded": "false", "aria-controls": "kc-panel",
    onclick: function () { setOpen(!state.open, true); } }, [svgIcon(), ui.launcherText, ui.launcherExtra, ui.badge]);
  ui.title = h("h2", { id: "kc-title" });
  ui.logo = h("img", { alt: "", hidden: true });
  ui.langLabel = h("label", { "for": "kc-lang", "class": "vh" });
  ui.lang = h("select", { id: "kc-lang", onchange: function () { chooseLanguage(ui.lang.value); } },
    LANGS.map(function (code) { return h("option", { value: code, lang: code, dir: RTL[code] ? "rtl" : "ltr", text: NAMES[code] }); }));
  ui.close = h("button", { "class": "icon", type: "button", onclick: function () { setOpen(false, true); } }, [
    h("span", { "aria-hidden": "true", text: "×" })]);
  ui.noticeTitle = h("h3", { id: "kc-notices-title" });
  ui.noticeList = h("ul");
  ui.notices = h("section", { "class": "notices", "aria-labelledby": "kc-notices-title", hidden: true },
    [ui.noticeTitle, ui.noticeList]);
  ui.status = h("div", { "class": "status", role: "status" });
  ui.log = h("div", { "class": "log", role: "log", "aria-live": "polite", tabindex: "0", id: "kc-log" });
  ui.typingText = h("span");
  ui.typing = h("div", { "class": "typing", hidden: true }, [h("span", { "class": "dots", "aria-hidden": "true" },
    [h("span"), h("span"), h("span")]), " ", ui.typingText]);
  ui.human = h("button", { "class": "human", type: "button", onclick: requestHuman });
  ui.leave = h("button", { "class": "human", type: "button", hidden: true, onclick: leaveQueue });
  ui.end = h("button", { "class": "human", type: "button", hidden: true, onclick: endChat });
  ui.error = h("div", { "class": "error", role: "alert" });
  // The privacy notice (GDPR art. 13): the municipality's own text from /chat/privacy, else the built-in one.
  ui.privacyText = h("span");
  ui.privacyLink = h("a", { target: "_blank", rel: "noopener noreferrer", hidden: true });
  ui.privacy = h("p", { "class": "privacy" }, [ui.privacyText, " ", ui.privacyLink]);
  ui.inputLabel = h("label", { "for": "kc-input" });
  ui.input = h("textarea", { id: "kc-input", rows: "2", maxlength: String(MAX_CHARS), autocomplete: "off",
    onkeydown: function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    } });
  ui.send = h("button", { "class": "send", type: "submit" });
  var lastTyping = 0;
  ui.input.addEventListener("input", function () {
    // The agent sees that the citizen is typing (at most every 3 s; the bot does not need it).
    if (state.conv !== "agent" || !ws || ws.readyState !== 1 || Date.now() - lastTyping < 3000) return;
    lastTyping = Date.now();
    ws.send(JSON.stringify({ type: "typing", typing: true }));
  });
  ui.form = h("form", { "class": "compose", onsubmit: function (e) { e.preventDefault(); submit(); } }, [ui.inputLabel, ui.input, ui.send]);
  ui.panel = h("section", { id: "kc-panel", "class": "panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "kc-title", hidden: true,
    onkeydown: function (e) { if (e.key === "Escape") { e.preventDefault(); setOpen(false, true); } } },
  [h("header", {}, [ui.logo, ui.title, ui.langLabel, ui.lang, ui.close]), ui.notices, ui.status, ui.log, ui.typing,
    h("div", { "class": "bar" }, [ui.human, ui.leave, ui.end]), ui.error, ui.privacy, ui.form]);
  ui.shell = h("div", { "class": "kc" }, [ui.launcher, ui.panel]);
  if (getComputedStyle(document.documentElement).direction === "rtl" || document.dir === "rtl") ui.shell.classList.add("host-rtl");
  root.appendChild(ui.shell);

  function svgIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6v2h2V9H7zm4 0v2h2V9h-2zm4 0v2h2V9h-2z");
    svg.appendChild(path);
    return svg;
  }

  // ------------------------------------------------------------------ language
  var stringCache = {};
  // The server's one language table (core/languages.py, GET /api/v1/languages); the list above is the
  // fallback while it loads or if it cannot be read.
  function loadLanguages() {
    return api("GET", "/languages").then(function (data) {
      var list = (data && data.languages) || [];
      if (!list.length) return;
      LANGS = list.map(function (l) { return l.code; });
      list.forEach(function (l) {
        NAMES[l.code] = l.name; RTL[l.code] = l.direction === "rtl";
        if (l.locale) LOCALE[l.code] = l.locale;
      });
      ui.lang.replaceChildren.apply(ui.lang, LANGS.map(function (code) {
        return h("option", { value: code, lang: code, dir: RTL[code] ? "rtl" : "ltr", text: NAMES[code] });
      }));
      ui.lang.value = state.lang;
    }, function () { /* keep the built-in list */ });
  }
  function loadStrings(lang) {
    if (stringCache[lang]) return Promise.resolve(stringCache[lang]);
    return api("GET", "/chat/i18n/" + lang).then(function (data) { stringCache[lang] = data.strings; return data.strings; });
  }
  function applyLanguage() {
    var dir = RTL[state.lang] ? "rtl" : "ltr";
    ui.shell.setAttribute("lang", state.lang);
    ui.shell.setAttribute("dir", dir);
    ui.lang.value = state.lang;
    ui.launcherText.textContent = t("open_chat");
    ui.title.textContent = state.config && state.config.name ? t("title_named", { name: state.config.name }) : t("title");
    ui.langLabel.textContent = t("language");
    ui.close.setAttribute("aria-label", t("close"));
    ui.noticeTitle.textContent = t("notices_title");
    ui.log.setAttribute("aria-label", t("messages_label"));
    ui.typingText.textContent = t("typing");
    ui.human.textContent = t("talk_to_person");
    ui.leave.textContent = t("leave_queue");
    ui.end.textContent = t("end_chat");
    ui.inputLabel.textContent = t("input_label");
    ui.input.setAttribute("placeholder", t("placeholder"));
    ui.send.textContent = t("send");
    renderPrivacy();
    // A language change leaves the history alone (a screen reader would hear it all again); only an
    // empty chat's welcome follows the new language.
    if (!ui.log.firstChild || !Object.keys(state.messages).length) renderAll();
    renderNotices();
    renderStatus();
    renderBadge();
  }
  function chooseLanguage(lang) {
    if (LANGS.indexOf(lang) < 0) return;
    state.lang = lang;
    save("localStorage", KEY + ":lang", lang);
    loadStrings(lang).then(function (strings) {
      state.strings = strings;
      applyLanguage();
      loadNotices();
      loadLanguages();
      loadConfig();
      loadPrivacy();
    }).catch(function () { /* keep the current texts */ });
    if (state.session) api("POST", "/chat/sessions/" + state.session + "/language", { language: lang }).catch(function () {});
  }

  // ------------------------------------------------------------------ rendering
  function linkify(text) {
    // A url written twice in one message (in the answer and on its own line) is one link: one tab stop.
    var parts = [], linked = {};
    var re = /\bhttps?:\/\/[^\s<>"']+/g;
    var last = 0, m;
    while ((m = re.exec(text))) {
      var url = m[0].replace(/[.,;:!?)\]]+$/, "");
      parts.push(document.createTextNode(text.slice(last, m.index)));
      parts.push(linked[url] ? document.createTextNode(url) : h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: url }));
      linked[url] = true;
      last = m.index + url.length;
      re.lastIndex = last;
    }
    parts.push(document.createTextNode(text.slice(last)));
    return parts;
  }
  function safeUrl(url) {
    try { var u = new URL(url); return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null; } catch (e) { return null; }
  }
  function isThumb(payload) { return FEEDBACK_PAYLOADS.indexOf(payload) >= 0; }
  function buttonTitle(payload, beforeId) {
    if (payload === "/request_human") return t("talk_to_person");
    var ids = Object.keys(state.messages).map(Number).filter(function (id) { return id < beforeId; }).sort(function (a, b) { return b - a; });
    for (var i = 0; i < ids.length; i++) {
      var buttons = state.messages[ids[i]].buttons || [];
      for (var j = 0; j < buttons.length; j++) if (buttons[j].payload === payload) return buttons[j].title;
    }
    return null;
  }
  function visible(msg) {
    if (msg.sender === "note") return false;
    if (msg.sender === "system" && msg.custom && msg.custom.kind === "feedback") return false;
    if (msg.sender === "citizen" && msg.text.charAt(0) === "/") return buttonTitle(msg.text, msg.id) !== null;
    return !!(msg.text || (msg.buttons && msg.buttons.length));
  }
  function who(sender, msg) {
    if (sender === "citizen") return t("you");
    if (sender === "agent") return msg && msg.author ? t("agent") + " " + msg.author : t("agent");
    if (sender === "system") return "";
    return t("bot");
  }
  function messageNode(msg) {
    var text = msg.text;
    if (msg.sender === "citizen" && text.charAt(0) === "/") text = buttonTitle(text, msg.id) || "";
    var li = h("div", { "class": "msg " + msg.sender, "data-id": String(msg.id) });
    var label = who(msg.sender, msg);
    if (label) li.appendChild(h("span", { "class": msg.sender === "bot" ? "vh" : "who", text: label + ":" }));
    if (text) li.appendChild(h("div", { "class": "bubble", dir: "auto" }, linkify(text)));
    var url = msg.url && safeUrl(msg.url);
    if (url && text.indexOf(msg.url) < 0) {
      li.appendChild(h("a", { href: url, target: "_blank", rel: "noopener noreferrer", "class": "source", text: t("link") }));
    }
    if (msg.custom && msg.custom.kind === "rating_request") li.appendChild(ratingForm(msg));
    var buttons = msg.buttons || [];
    var thumbs = buttons.filter(function (b) { return isThumb(b.payload); });
    var choices = buttons.filter(function (b) { return !isThumb(b.payload); });
    if (choices.length) {
      li.appendChild(h("div", { "class": "choices", role: "group", "aria-label": label || t("bot") },
        choices.map(function (b) {
          return h("button", { type: "button", dir: "auto", "data-payload": b.payload, text: b.title,
            onclick: function () { choose(b); } });
        })));
    }
    if (thumbs.length) li.appendChild(thumbsNode(thumbs));
    return li;
  }
  function thumbsNode(thumbs) {
    // Small icons with the answer, not a question after every answer; named for screen readers.
    var question = h("span", { "class": "q", text: t("did_it_help") });
    return h("div", { "class": "thumbs choices", role: "group", "aria-label": t("did_it_help") }, [question].concat(
      thumbs.map(function (b) {
        var icon = THUMB_ICONS[FEEDBACK_PAYLOADS.indexOf(b.payload)];
        return h("button", { type: "button", "data-payload": b.payload, "aria-label": b.title, title: b.title,
          onclick: function () { choose(b); } }, [h("span", { "aria-hidden": "true", text: icon })]);
      })));
  }
  function topicsNode() {
    // The municipality's top topics under the welcome: one click asks the question.
    var topics = (state.config && state.config.topics) || [];
    if (!topics.length) return null;
    return h("div", { "class": "topics" }, [h("h3", { text: t("topics_title") }),
      h("div", { "class": "choices", role: "group", "aria-label": t("topics_title") }, topics.map(function (topic) {
        return h("button", { type: "button", dir: "auto", text: topic.question,
          onclick: function () { send(topic.question, null); ui.input.focus(); } });
      }))]);
  }
  function ratingForm(msg) {
    // After an agent closes the chat: 1-5 and an optional comment (POST .../rating).
    var key = "rated:" + msg.id;
    var name = "kc-rate-" + msg.id;
    if (load("localStorage", KEY + ":" + key)) return h("p", { "class": "thanks", text: t("rating_thanks") });
    var comment = h("textarea", { id: name + "-c", rows: "2", maxlength: "2000" });
    var status = h("p", { role: "status" });
    var legend = h("legend", { "class": "vh", text: msg.text });
    var ends = { 1: t("rating_low"), 5: t("rating_high") };
    var radios = [1, 2, 3, 4, 5].map(function (n) {
      var spoken = t("rating_score", { score: n }) + (ends[n] ? " – " + ends[n] : "");
      return h("label", { "class": "star" }, [h("input", { type: "radio", name: name, value: String(n), required: n === 1 }),
        h("span", { "aria-hidden": "true", text: String(n) }), h("span", { "class": "vh", text: spoken })]);
    });
    var scale = h("div", { "class": "scale", "aria-hidden": "true" }, [h("span", { text: "1 = " + ends[1] }), h("span", { text: "5 = " + ends[5] })]);
    var form = h("form", { "class": "rating", onsubmit: function (e) {
      e.preventDefault();
      var chosen = form.querySelector("input[name='" + name + "']:checked");
      if (!chosen || !state.session) return;
      api("POST", "/chat/sessions/" + state.session + "/rating", { score: Number(chosen.value), comment: comment.value.trim() || null })
        .then(function () {
          save("localStorage", KEY + ":" + key, true);
          form.replaceWith(h("p", { "class": "thanks", role: "status", text: t("rating_thanks") }));
        }).catch(function () { status.textContent = t("not_sent"); });
    } }, [h("fieldset", {}, [legend, h("div", { "class": "stars" }, radios), scale]),
      h("label", { "for": name + "-c", "class": "lbl", text: t("rating_comment") }), comment,
      h("button", { "class": "send", type: "submit", text: t("rating_send") }), status]);
    return form;
  }
  function insertSorted(node, id) {
    var items = ui.log.querySelectorAll(".msg[data-id]");
    for (var i = 0; i < items.length; i++) {
      if (Number(items[i].getAttribute("data-id")) > id) { ui.log.insertBefore(node, items[i]); return; }
    }
    var firstPending = ui.log.querySelector(".msg.pending");
    ui.log.insertBefore(node, firstPending);
  }
  function refreshChoices() {
    // Only the buttons after the citizen's latest message can still be chosen.
    var items = ui.log.querySelectorAll(".msg[data-id]");
    var lastCitizen = -1;
    for (var i = 0; i < items.length; i++) if (items[i].classList.contains("citizen")) lastCitizen = i;
    for (var j = 0; j < items.length; j++) {
      var buttons = items[j].querySelectorAll(".choices button");
      for (var k = 0; k < buttons.length; k++) buttons[k].disabled = j < lastCitizen;
    }
  }
  function ingest(list, fromStream) {
    var added = false;
    (list || []).forEach(function (msg) {
      if (typeof msg.id !== "number") return;
      if (fromStream && msg.id > state.synced) state.synced = msg.id;
      if (state.messages[msg.id]) return;
      state.messages[msg.id] = msg;
      if (msg.sender === "citizen") settlePending(msg);
      if (!visible(msg)) return;
      insertSorted(messageNode(msg), msg.id);
      added = true;
      if (msg.sender !== "citizen" && !state.open) { state.unread += 1; renderBadge(); }
      if (msg.sender === "agent") showTyping(false);
    });
    if (added) { renderTopics(); refreshChoices(); scrollDown(); }
  }
  function renderAll() {
    Array.prototype.slice.call(ui.log.children).forEach(function (n) { n.remove(); });
    ui.log.appendChild(h("div", { "class": "msg bot welcome" }, [h("span", { "class": "vh", text: t("bot") + ":" }),
      h("div", { "class": "bubble", dir: "auto", text: t("welcome") })]));
    renderTopics();
    Object.keys(state.messages).map(Number).sort(function (a, b) { return a - b; }).forEach(function (id) {
      if (visible(state.messages[id])) ui.log.appendChild(messageNode(state.messages[id]));
    });
    renderPending();
    refreshChoices();
  }
  function renderTopics() {
    // Only while the chat is empty: once the citizen has written, the topics would be noise.
    var old = ui.log.querySelector(".topics");
    if (old) old.remove();
    if (Object.keys(state.messages).length || state.pending.length) return;
    var node = topicsNode();
    var welcome = ui.log.querySelector(".welcome");
    if (node && welcome) welcome.appendChild(node);
  }
  function renderPending() {
    Array.prototype.slice.call(ui.log.querySelectorAll(".msg.pending")).forEach(function (n) { n.remove(); });
    state.pending.forEach(function (p) {
      if (p.delivered) return;
      ui.log.appendChild(h("div", { "class": "msg citizen pending" + (p.status === "failed" ? " failed" : "") }, [
        h("span", { "class": "who", text: t("you") + ":" }),
        h("div", { "class": "bubble", dir: "auto", text: p.display || p.text }),
        h("small", { text: p.status === "failed" ? t("not_sent") : t("sending") })
      ]));
    });
    scrollDown();
  }
  function settlePending(msg) {
    // The server has a citizen message: if it is the one being sent, stop showing it as pending.
    var first = state.pending[0];
    if (first && first.inFlight && first.text === msg.text) { first.delivered = true; renderPending(); }
  }
  function scrollDown() { ui.log.scrollTop = ui.log.scrollHeight; }
  var typingTimer = null;
  function showTyping(on, seconds) {
    clearTimeout(typingTimer);
    ui.typing.hidden = !on;
    if (on && seconds) typingTimer = setTimeout(function () { ui.typing.hidden = true; }, seconds * 1000);
  }
  var connectionNote = "";
  function renderStatus() {
    var text = "";
    if (state.conv === "queued" && state.queue && state.queue.position) {
      text = t("queue_position", { position: state.queue.position });
      if (state.queue.agents_online === 0) text += " " + t("queue_no_agent");
      else if (state.queue.estimated_wait_seconds != null) text += " " + t("queue_wait", { wait: waitPhrase(state.queue.estimated_wait_seconds) });
    } else if (state.conv === "agent") {
      text = t("agent_joined");
    } else if (state.conv === "closed") {
      text = t("closed");
    }
    if (connectionNote) text = (text ? text + " " : "") + t(connectionNote);
    if (ui.status.textContent !== text) ui.status.textContent = text;
    ui.human.disabled = state.conv === "queued" || state.conv === "agent";
    ui.leave.hidden = state.conv !== "queued";
    ui.end.hidden = !(state.conv === "queued" || state.conv === "agent");
  }
  function waitPhrase(seconds) {
    // Same words and plural categories as the bot's message (actions/waits.py).
    if (seconds < 60) return t("wait_under");
    var n = Math.ceil(seconds / 60), category = "other";
    try { category = new Intl.PluralRules(LOCALE[state.lang] || state.lang).select(n); } catch (e) { /* "other" */ }
    var key = "wait_" + category;
    return (state.strings[key] ? t(key, { n: n }) : t("wait_other", { n: n }));
  }
  function renderBadge() {
    ui.badge.hidden = state.unread === 0;
    ui.badge.textContent = String(state.unread);
    var extra = [];
    if (state.unread) extra.push(state.unread + " " + t("unread"));
    if (state.notices.length) extra.push(t("notices_title") + ": " + state.notices.length);
    ui.launcherExtra.textContent = extra.length ? " (" + extra.join(", ") + ")" : "";
  }
  function formatTime(seconds) {
    try {
      return new Intl.DateTimeFormat(LOCALE[state.lang] || state.lang, { dateStyle: "short", timeStyle: "short" })
        .format(new Date(seconds * 1000));
    } catch (e) { return new Date(seconds * 1000).toLocaleString(); }
  }
  function renderNotices() {
    Array.prototype.slice.call(ui.noticeList.children).forEach(function (n) { n.remove(); });
    state.notices.forEach(function (n) {
      var li = h("li", { dir: "auto" }, [document.createTextNode((n.area ? n.area + ": " : "") + n.text)]);
      var url = n.url && safeUrl(n.url);
      if (url) { li.appendChild(document.createTextNode(" ")); li.appendChild(h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: t("link") })); }
      li.appendChild(h("small", { text: t("valid_until", { time: formatTime(n.valid_until) }) }));
      ui.noticeList.appendChild(li);
    });
    ui.notices.hidden = state.notices.length === 0;
    renderBadge();
  }
  function readableOn(hex) {
    // Black or white text, whichever contrasts more with the municipality's colour.
    var n = parseInt(hex.slice(1), 16), rgb = [n >> 16 & 255, n >> 8 & 255, n & 255].map(function (c) {
      c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    return (1.05 / (lum + 0.05)) >= ((lum + 0.05) / 0.05) ? "#fff" : "#1b1b1b";
  }
  function applyConfig() {
    var c = state.config || {};
    var colors = c.colors || {};
    if (/^#[0-9a-fA-F]{6}$/.test(colors.primary || "")) {
      ui.shell.style.setProperty("--kc-primary", colors.primary);
      ui.shell.style.setProperty("--kc-primary-dark", /^#[0-9a-fA-F]{6}$/.test(colors.primary_dark || "") ? colors.primary_dark : colors.primary);
      ui.shell.style.setProperty("--kc-on-primary", readableOn(colors.primary));
    }
    var logo = c.logo_url && safeUrl(new URL(c.logo_url, HOST).href);
    ui.logo.hidden = !logo;
    if (logo) ui.logo.setAttribute("src", logo);
    ui.title.textContent = c.name ? t("title_named", { name: c.name }) : t("title");
    renderTopics();
  }
  function loadConfig() {
    return api("GET", "/chat/config?municipality=" + encodeURIComponent(MUNICIPALITY) + "&language=" + state.lang)
      .then(function (config) { state.config = config; applyConfig(); })
      .catch(function () { /* the defaults stay */ });
  }
  function renderPrivacy() {
    var p = state.privacy || {};
    ui.privacyText.textContent = p.text || t("privacy_notice");
    var url = p.url && safeUrl(p.url);
    ui.privacyLink.hidden = !url;
    if (url) { ui.privacyLink.setAttribute("href", url); ui.privacyLink.textContent = t("privacy_link"); }
  }
  function loadPrivacy() {
    return api("GET", "/chat/privacy?municipality=" + encodeURIComponent(MUNICIPALITY) + "&language=" + state.lang)
      .then(function (privacy) { state.privacy = privacy; renderPrivacy(); })
      .catch(function () { /* the built-in notice stays */ });
  }
  function loadNotices() {
    api("GET", "/notices?municipality=" + encodeURIComponent(MUNICIPALITY) + "&language=" + state.lang)
      .then(function (list) { state.notices = list || []; renderNotices(); })
      .catch(function () { /* the banner is optional */ });
  }

  // ------------------------------------------------------------------ conversation state
  function setConversation(conv, queue) {
    if (conv) state.conv = conv;
    if (queue) state.queue = queue;
    renderStatus();
  }
  function setOpen(open, moveFocus) {
    state.open = open;
    ui.panel.hidden = !open;
    ui.shell.classList.toggle("is-open", open);
    ui.launcher.setAttribute("aria-expanded", String(open));
    persist();
    if (open) {
      state.unread = 0;
      renderBadge();
      scrollDown();
      if (moveFocus) ui.input.focus();
    } else if (moveFocus) {
      ui.launcher.focus();
    }
  }

  // ------------------------------------------------------------------ sending
  function submit() {
    var text = ui.input.value.trim();
    ui.error.textContent = "";
    if (!text) return;
    if (text.length > MAX_CHARS) { ui.error.textContent = t("too_long", { max: MAX_CHARS }); return; }
    ui.input.value = "";
    send(text, null);
  }
  function choose(button) {
    if (button.payload === "/leave_queue") { leaveQueue(); return; }
    if (button.payload === LEAVE_MESSAGE && state.conv === "queued") {
      // The bot does not listen while the chat waits for a person: leave the queue, then ask for the call-back form.
      sessionCommand("leave-queue").then(function () { send(button.payload, button.title); });
      return;
    }
    send(button.payload, button.title);
    ui.input.focus();
  }
  function sessionCommand(path) {
    // Leave the queue / end the chat: the agent's console hears it at once (the service publishes it).
    if (!state.session) return Promise.resolve();
    ui.input.focus();
    return api("POST", "/chat/sessions/" + state.session + "/" + path).then(function (data) {
      setConversation(data.state, data.queue);
      return sync(); // the service's system message says what happened
    }).catch(function () { ui.error.textContent = t("not_sent"); });
  }
  function leaveQueue() { sessionCommand("leave-queue"); }
  function endChat() { sessionCommand("end"); }
  function requestHuman() {
    send("/request_human", t("talk_to_person"));
    ui.input.focus();
  }
  function send(text, display) {
    state.pending.push({ client_id: uid(), text: text, display: display, status: "sending" });
    persist();
    renderTopics();
    renderPending();
    flush();
  }
  function ensureSession() {
    if (state.session) return Promise.resolve(state.session);
    return api("POST", "/chat/sessions", { language: state.lang, municipality: MUNICIPALITY }).then(function (data) {
      state.session = data.session_id;
      persist();
      connect();
      return state.session;
    });
  }
  // A failed send is tried again after 0.5 s, then 1, 2, 4 ... 15 s: a replica that died mid-request has a
  // live twin behind the balancer at once, so the first retry comes soon (tests/test_replicas.py).
  var FIRST_RETRY_MS = 500;
  var flushing = false, retryTimer = null, retryDelay = FIRST_RETRY_MS;
  function scheduleRetry() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(flush, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }
  function flush() {
    if (flushing || !state.pending.length) return;
    flushing = true;
    ensureSession().then(function () { return sendNext(); }).catch(function (error) {
      failFirst(error);
    }).then(function () { flushing = false; });
  }
  function failFirst(error) {
    var first = state.pending[0];
    if (!first) return;
    first.inFlight = false;
    if (error && error.status === 404) { resetSession(); scheduleRetry(); return; }
    if (error && (error.status === 413 || error.status === 422)) {
      state.pending.shift();
      persist();
      renderPending();
      ui.error.textContent = t("too_long", { max: MAX_CHARS });
      return;
    }
    first.status = "failed"; // (if the server did get it, its echo already marked it delivered)
    renderPending();
    scheduleRetry();
  }
  function sendNext() {
    var item = state.pending[0];
    if (!item) return Promise.resolve();
    item.inFlight = true;
    if (state.conv === "bot" || state.conv === "closed") showTyping(true);
    return api("POST", "/chat/sessions/" + state.session + "/messages", { text: item.text, client_id: item.client_id })
      .then(function (reply) {
        showTyping(false);
        retryDelay = FIRST_RETRY_MS;
        state.pending.shift();
        persist();
        renderPending();
        return sync().then(function () {
          ingest(reply.messages, false); // already there when the transcript had them
          setConversation(reply.state);
          return sendNext();
        });
      }, function (error) { showTyping(false); throw error; });
  }
  function sync() {
    if (!state.session) return Promise.resolve();
    return api("GET", "/chat/sessions/" + state.session + "?after=" + state.synced).then(function (data) {
      ingest(data.messages, true);
      setConversation(data.state, data.queue);
    });
  }
  function resetSession() {
    state.session = null;
    state.synced = 0;
    state.messages = {};
    state.conv = "bot";
    state.queue = null;
    if (ws) { try { ws.close(); } catch (e) { /* closing anyway */ } }
    persist();
    renderAll();
    renderStatus();
  }

  // ------------------------------------------------------------------ live events
  var ws = null, wsDelay = 1000, wsTimer = null, wsWasDown = false;
  function connect() {
    if (!state.session || ws) return;
    var socket = new WebSocket(HOST.replace(/^http/, "ws") + "/api/v1/chat/sessions/" + state.session + "/ws?after=" + state.synced);
    ws = socket;
    socket.onopen = function () {
      wsDelay = 1000;
      if (wsWasDown) { connectionNote = "reconnected"; renderStatus(); setTimeout(function () { if (connectionNote === "reconnected") { connectionNote = ""; renderStatus(); } }, 4000); }
      wsWasDown = false;
      flush();
    };
    socket.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "message") ingest([data], true);
      else if (data.type === "state") setConversation(data.state, data);
      else if (data.type === "typing" && data.sender !== "citizen") showTyping(data.typing !== false, 8);
    };
    socket.onclose = function (event) {
      if (ws === socket) ws = null;
      if (event.code === 4404) { resetSession(); return; }
      if (!state.session) return;
      wsWasDown = true;
      connectionNote = "offline";
      renderStatus();
      clearTimeout(wsTimer);
      wsTimer = setTimeout(function () { sync().catch(function () {}).then(connect); }, wsDelay);
      wsDelay = Math.min(wsDelay * 2, 15000);
    };
  }
  window.addEventListener("online", function () { retryDelay = FIRST_RETRY_MS; flush(); if (!ws) connect(); });

  // ------------------------------------------------------------------ start
  function start() {
    document.body.appendChild(host);
    loadStrings(state.lang).catch(function () { return loadStrings("sv"); }).then(function (strings) {
      state.strings = strings || {};
      applyLanguage();
      setOpen(state.open, false);
      loadNotices();
      loadConfig();
      loadPrivacy();
      // A new disruption notice reaches an open widget within NOTICE_POLL_MS (a hidden tab asks when it returns).
      setInterval(function () { if (!document.hidden) loadNotices(); }, NOTICE_POLL_MS);
      document.addEventListener("visibilitychange", function () { if (!document.hidden) loadNotices(); });
      if (state.session) {
        sync().then(function () { connect(); flush(); }, function (error) {
          if (error.status === 404) resetSession();
          flush();
        });
      } else {
        flush();
      }
    });
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
