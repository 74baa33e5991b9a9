/*
 * The webmaster's workshop (no build step). Views are chosen by the URL hash; every text that comes
 * from the knowledge base or from citizens is inserted with textContent, never as HTML. Its own words are
 * the `workshop_*` keys of the server's string table (core/service_texts.yml), in Swedish or English as the
 * staff pages choose (web/agent/texts.js: the staff member's choice, else the browser's, else Swedish).
 */
import { STAFF_LANGUAGES, chooseLanguage, language, loadTexts, staffLanguage, t, translatePage } from "../agent/texts.js";
import { newest } from "../staff/ui.js"; // only the newest of overlapping loads fills a view

(function () {
  "use strict";

  var LANGS = ["sv", "en", "ar", "so", "fa", "fi", "ku", "tr", "pl", "uk", "da", "no"];
  var NAMES = {
    sv: "Svenska", en: "Engelska", ar: "Arabiska", so: "Somaliska", fa: "Persiska", fi: "Finska", ku: "Kurdiska",
    tr: "Turkiska", pl: "Polska", uk: "Ukrainska", da: "Danska", no: "Norska"
  };
  var RTL = { ar: true, fa: true };
  var SOURCE = "sv"; // the language translations are made from
  /** A code from the server (a reason, a decision) in words: the table's `workshop_<prefix><code>`, else the code. */
  function said(prefix, code) {
    var key = "workshop_" + prefix + code;
    var text = t(key);
    return text === key ? String(code).replace(/_/g, " ") : text;
  }
  /** A language's name in the staff member's language ("Arabiska", "Arabic"): Swedish from the server's table. */
  function langName(code) {
    if (language() === "sv") return NAMES[code] || code;
    try {
      var name = new Intl.DisplayNames([language()], { type: "language" }).of(code);
      if (name && name !== code) return name.charAt(0).toLocaleUpperCase(language()) + name.slice(1);
    } catch (e) { /* an unknown code */ }
    return code;
  }
  /** A language's name inside a sentence ("Saknar arabiska", "Missing Arabic"). */
  function langInSentence(code) { return language() === "sv" ? langName(code).toLowerCase() : langName(code); }
  var me = null;
  var view = document.getElementById("view");

  // ------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }
  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (k === "text") node.textContent = v;
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, "");
      else if (v !== false && v != null) node.setAttribute(k, v);
    });
    (children || []).forEach(function (c) {
      if (c != null && c !== false) node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function muni() { return $("municipality").value || "default"; }
  function q(params) {
    params = Object.assign({ municipality: muni() }, params || {});
    return "?" + Object.keys(params).filter(function (k) { return params[k] !== "" && params[k] != null; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
  }
  function api(method, path, body, raw) {
    // Errors come with a `message` in the page's language (core/error_texts.py); `detail` stays English.
    var options = { method: method, headers: { "accept-language": language() }, credentials: "same-origin" };
    if (raw !== undefined) { options.body = raw; options.headers["content-type"] = "application/octet-stream"; }
    else if (body !== undefined) { options.body = JSON.stringify(body); options.headers["content-type"] = "application/json"; }
    return fetch("/api/v1" + path, options).then(function (r) {
      return (r.status === 204 ? Promise.resolve(null) : r.json().catch(function () { return null; })).then(function (data) {
        if (r.status === 401) { showLogin(); }
        if (!r.ok) { var e = new Error(detailText(data) || ("HTTP " + r.status)); e.status = r.status; e.data = data; throw e; }
        return data;
      });
    });
  }
  function detailText(data) {
    if (data && typeof data.message === "string" && data.message) return data.message;
    if (!data || !data.detail) return "";
    if (typeof data.detail === "string") return data.detail;
    return data.detail.map(function (p) { return (p.field ? p.field + ": " : "") + p.message; }).join("; ");
  }
  function toast(text) {
    $("toast").textContent = text;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { $("toast").textContent = ""; }, 6000);
  }
  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString(language() === "sv" ? "sv-SE" : "en-GB", { dateStyle: "short", timeStyle: "short" }) : "–";
  }
  function table(caption, headers, rows) {
    return h("div", { "class": "table-wrap" }, [h("table", {}, [
      h("caption", { text: caption }),
      h("thead", {}, [h("tr", {}, headers.map(function (x) { return h("th", { scope: "col", text: x }); }))]),
      h("tbody", {}, rows.map(function (cells) {
        return h("tr", {}, cells.map(function (c) { return h("td", {}, [c]); }));
      }))
    ])]);
  }
  function field(id, label, input) {
    input.id = id;
    return h("div", {}, [h("label", { "for": id, text: label }), input]);
  }
  function langSelect(id, withAuto) {
    var options = (withAuto ? [h("option", { value: "", text: t("workshop_detect_automatically") })] : [])
      .concat(LANGS.map(function (l) { return h("option", { value: l, text: langName(l) + " (" + l + ")" }); }));
    return h("select", { id: id }, options);
  }
  function page(title, children) {
    view.replaceChildren(h("h1", { text: title, tabindex: "-1", id: "page-title" }), ...children);
  }

  // ------------------------------------------------------------------ login and navigation
  function showLogin() {
    me = null;
    $("login-view").hidden = false;
    view.hidden = true;
    $("nav").hidden = true;
    $("who").hidden = true;
  }
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    $("login-error").textContent = "";
    api("POST", "/auth/login", { username: $("login-username").value, password: $("login-password").value })
      .then(start).catch(function (err) { $("login-error").textContent = err.status === 401 ? t("workshop_wrong_login") : err.message; });
  });
  $("logout").addEventListener("click", function () { api("POST", "/auth/logout").then(showLogin, showLogin); });
  $("municipality").addEventListener("change", route);

  // The server's one language table (core/languages.py); the list above stays if it cannot be read.
  function loadLanguages() {
    return api("GET", "/languages").then(function (data) {
      var list = (data && data.languages) || [];
      if (!list.length) return;
      LANGS = list.map(function (l) { return l.code; });
      list.forEach(function (l) { NAMES[l.code] = l.swedish || l.name; RTL[l.code] = l.direction === "rtl"; });
    }, function () { /* keep the built-in list */ });
  }

  function start() {
    return loadLanguages().then(function () { return api("GET", "/auth/me"); }).then(function (user) {
      if (user.role !== "webmaster" && user.role !== "admin") {
        showLogin();
        $("login-error").textContent = t("workshop_needs_webmaster", { role: user.role });
        return;
      }
      me = user;
      $("login-view").hidden = true;
      view.hidden = false;
      $("nav").hidden = false;
      $("who").hidden = false;
      $("username").textContent = user.display_name || user.username;
      $("municipality").replaceChildren(...(user.municipalities || ["default"]).map(function (m) { return h("option", { value: m, text: m }); }));
      route();
    }).catch(function () { showLogin(); });
  }
  window.addEventListener("hashchange", route);
  function route() {
    if (!me) return;
    var name = (location.hash || "#entries").slice(1).split("/")[0];
    var arg = decodeURIComponent((location.hash.split("/")[1]) || "");
    document.querySelectorAll("nav a").forEach(function (a) {
      if (a.getAttribute("href") === "#" + name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    var views = { entries: entries, edit: editEntry, "new": newEntry, "import": importView, freshness: freshness,
      unanswered: unanswered, suggestions: suggestionsView, console: testConsole, notices: notices, dashboard: dashboard, audit: audit };
    (views[name] || entries)(arg);
  }
  function focusTitle() { var title = $("page-title"); if (title) title.focus(); }

  // ------------------------------------------------------------------ entries
  function entries() {
    var search = h("input", { type: "search", id: "entry-search" });
    var missing = h("select", { id: "entry-missing" }, [h("option", { value: "", text: t("workshop_all") })].concat(
      LANGS.map(function (l) { return h("option", { value: l, text: t("workshop_missing_language", { language: langInSentence(l) }) }); })));
    var list = h("div", { id: "entry-list" });
    page(t("workshop_nav_entries"), [
      h("div", { "class": "toolbar", role: "search" }, [
        field("entry-search", t("workshop_search_label"), search),
        field("entry-missing", t("workshop_translation"), missing),
        h("div", {}, [h("a", { "class": "button", href: "#new", text: t("workshop_new_entry") })])
      ]), list]);
    var timer, begin = newest();
    function load() {
      var current = begin();
      api("GET", "/admin/entries" + q({ q: search.value, missing: missing.value })).then(function (data) {
        if (!current()) return;
        list.replaceChildren(table(t("workshop_entries_count", { n: data.entries.length }), ["workshop_col_entry", "workshop_col_question",
          "workshop_col_languages", "workshop_col_missing", "workshop_col_stale", "workshop_col_review_by", "workshop_col_changed"].map(function (k) { return t(k); }),
          data.entries.map(function (e) {
            return [
              h("a", { href: "#edit/" + encodeURIComponent(e.id), text: e.id }),
              h("span", { dir: "auto", text: e.question }),
              h("span", { text: e.answer_languages.join(", ") }),
              h("span", {}, e.missing.map(function (l) { return h("span", { "class": "tag missing", text: l }); })),
              h("span", {}, (e.stale || []).map(function (l) { return h("span", { "class": "tag bad", text: l }); })),
              h("span", { text: e.review_by || "–" }),
              h("span", { text: when(e.updated_at) + (e.updated_by ? " · " + e.updated_by : "") })
            ];
          })));
      });
    }
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 250); });
    missing.addEventListener("change", load);
    load();
    focusTitle();
  }

  function newEntry() {
    var draft = newEntry.draft || { id: "", questions: { sv: [] }, answer: { sv: "" } };
    var reference = newEntry.reference || [];
    newEntry.draft = null;
    newEntry.reference = null;
    renderEditor(draft, true, null, reference);
  }
  function editEntry(id) {
    api("GET", "/admin/entries/" + encodeURIComponent(id) + q()).then(function (data) {
      renderEditor(data.entry, false, data);
    }).catch(function (err) { page(t("workshop_entry_not_found"), [h("p", { "class": "error", text: err.message })]); });
  }
  function renderEditor(entry, isNew, detail, reference) {
    reference = reference || [];
    var shown = LANGS.filter(function (l) { return (entry.answer && entry.answer[l]) || (entry.questions && entry.questions[l]) || l === "sv"; });
    var id = h("input", { value: entry.id || "", required: true, readonly: !isNew, "aria-describedby": "id-help" });
    var tags = h("input", { value: (entry.tags || []).join(", ") });
    var url = h("input", { type: "url", value: entry.url || "" });
    var review = h("input", { type: "date", value: entry.review_by || "" });
    var columns = h("div", { "class": "langs" });
    var problems = h("div", { role: "alert", "class": "error" });
    var missingBox = h("p", {});
    function column(lang) {
      var qs = h("textarea", { rows: "5", lang: lang, dir: RTL[lang] ? "rtl" : "ltr", "data-lang": lang, "data-kind": "questions" });
      qs.value = ((entry.questions || {})[lang] || []).join("\n");
      var ans = h("textarea", { rows: "9", lang: lang, dir: RTL[lang] ? "rtl" : "ltr", "data-lang": lang, "data-kind": "answer" });
      ans.value = (entry.answer || {})[lang] || "";
      ans.addEventListener("input", updateMissing);
      if (lang === SOURCE) ans.addEventListener("input", markOutdated);
      var since = stale[lang];
      return h("fieldset", { "data-lang": lang }, [
        h("legend", {}, [langName(lang) + " (" + lang + ")",
          since ? h("span", { "class": "tag bad stale", "data-lang": lang, text: t("workshop_stale_since", { when: when(since) }) }) : null,
          lang !== SOURCE ? h("span", { "class": "tag missing will-be-stale", hidden: true, text: t("workshop_will_be_stale") }) : null]),
        field("q-" + lang, t("workshop_questions_label"), qs),
        field("a-" + lang, t("workshop_answer"), ans)
      ]);
    }
    var stale = (detail && detail.stale) || {};
    var sourceAnswer = (entry.answer || {})[SOURCE] || "";
    function markOutdated(e) {
      // Editing the Swedish answer makes every translation out of date (until it is edited too).
      var changed = e.target.value.trim() !== sourceAnswer.trim();
      columns.querySelectorAll("fieldset").forEach(function (fs) {
        var tag = fs.querySelector(".will-be-stale");
        var a = fs.querySelector("textarea[data-kind=answer]");
        if (tag) tag.hidden = !(changed && a && a.value.trim());
      });
    }
    shown.forEach(function (l) { columns.appendChild(column(l)); });
    var add = h("select", { id: "add-lang" });
    function refreshAdd() {
      add.replaceChildren(h("option", { value: "", text: t("workshop_choose_language") }), ...LANGS.filter(function (l) { return shown.indexOf(l) < 0; })
        .map(function (l) { return h("option", { value: l, text: langName(l) }); }));
    }
    refreshAdd();
    function updateMissing() {
      var have = LANGS.filter(function (l) {
        var a = columns.querySelector("textarea[data-kind=answer][data-lang=" + l + "]");
        return a && a.value.trim();
      });
      var lacking = LANGS.filter(function (l) { return have.indexOf(l) < 0; });
      missingBox.replaceChildren(h("strong", { text: t("workshop_missing_translations") + " " }),
        ...(lacking.length ? lacking.map(function (l) { return h("span", { "class": "tag missing", text: langName(l) }); }) : [h("span", { text: t("workshop_none") })]));
    }
    updateMissing();
    function collect() {
      var data = { id: id.value.trim(), answer: {}, questions: {} };
      var tagList = tags.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      if (tagList.length) data.tags = tagList;
      if (url.value.trim()) data.url = url.value.trim();
      if (review.value) data.review_by = review.value;
      columns.querySelectorAll("textarea").forEach(function (ta) {
        var lang = ta.getAttribute("data-lang");
        if (ta.getAttribute("data-kind") === "answer") { if (ta.value.trim()) data.answer[lang] = ta.value.trim(); }
        else {
          var lines = ta.value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
          if (lines.length) data.questions[lang] = lines;
        }
      });
      if (!Object.keys(data.questions).length) delete data.questions;
      return data;
    }
    function saveEntry(e) {
      e.preventDefault();
      problems.textContent = "";
      var data = collect();
      if (!data.id) { problems.textContent = t("workshop_id_required"); id.focus(); return; }
      var started = performance.now();
      api("PUT", "/knowledge/entries/" + encodeURIComponent(data.id) + q(), data).then(function (res) {
        toast(t("workshop_saved", { action: t(res.action === "create" ? "workshop_saved_create" : res.action === "update" ? "workshop_saved_update" : "workshop_saved_unchanged"),
          ms: Math.round(performance.now() - started) }));
        location.hash = "#edit/" + encodeURIComponent(data.id);
        if (!isNew) editEntry(data.id);
      }).catch(function (err) {
        var list = (err.data && err.data.errors && err.data.errors.length) ? err.data.errors : [{ field: "", message: err.message }];
        problems.replaceChildren(h("p", { text: t("workshop_not_saved") }), h("ul", {}, list.map(function (p) {
          return h("li", { text: p.field ? t("workshop_field_problem", { field: p.field, message: p.text || p.message }) : p.text || p.message });
        })));
      });
    }
    var children = [
      h("form", { id: "entry-form", onsubmit: saveEntry }, [
        h("div", { "class": "card grid2" }, [
          h("div", {}, [h("label", { "for": "entry-id", text: t("workshop_id") }), Object.assign(id, { id: "entry-id" }),
            h("p", { id: "id-help", "class": "muted", text: t("workshop_id_help") })]),
          field("entry-tags", t("workshop_tags"), tags),
          field("entry-url", t("workshop_more_info_link"), url),
          field("entry-review", t("workshop_review_by"), review)
        ]),
        missingBox,
        Object.keys(stale).length ? h("p", { "class": "stale-summary" }, [h("strong", { text: t("workshop_stale_translations") + " " })].concat(
          Object.keys(stale).map(function (l) { return h("span", { "class": "tag bad", text: langName(l) }); }),
          [h("span", { text: " " + t("workshop_stale_explain") })])) : null,
        reference.length ? h("div", { "class": "card reference" }, [h("h2", { text: t("workshop_agents_reference") })].concat(
          reference.map(function (d) { return h("blockquote", { dir: "auto", text: d }); }))) : null,
        h("div", { "class": "toolbar" }, [field("add-lang", t("workshop_show_language"), add),
          h("div", {}, [h("button", { type: "button", "class": "secondary", text: t("workshop_add_language_column"), onclick: function () {
            if (!add.value) return;
            shown.push(add.value);
            var col = column(add.value);
            columns.appendChild(col);
            refreshAdd();
            col.querySelector("textarea").focus();
          } })])]),
        columns,
        problems,
        h("div", { "class": "toolbar" }, [h("button", { type: "submit", text: t("workshop_save") }),
          !isNew && h("button", { type: "button", "class": "danger", text: t("workshop_delete"), onclick: function () {
            if (!window.confirm(t("workshop_confirm_delete_entry", { id: entry.id }))) return;
            api("DELETE", "/knowledge/entries/" + encodeURIComponent(entry.id) + q()).then(function () {
              toast(t("workshop_entry_deleted", { id: entry.id })); location.hash = "#entries";
            });
          } }),
          h("a", { href: "#entries", text: t("workshop_back_to_list") })])
      ])
    ];
    if (detail) {
      children.push(h("p", {}, [h("strong", { text: t("workshop_feedback") + " " }),
        h("span", { "class": "tag good", text: t("workshop_helpful_count", { n: detail.feedback.helpful }) }),
        h("span", { "class": "tag bad", text: t("workshop_not_helpful_count", { n: detail.feedback.not_helpful }) })]));
      children.push(h("h2", { text: t("workshop_changes") }), auditTable(detail.audit, false));
    }
    page(isNew ? t("workshop_new_entry") : t("workshop_entry_title", { id: entry.id }), children);
    focusTitle();
  }

  // ------------------------------------------------------------------ import / export
  function importView() {
    var file = h("input", { type: "file", accept: ".yml,.yaml,.jsonl,.ndjson,.csv" });
    var replace = h("input", { type: "checkbox", id: "import-replace" });
    var dry = h("input", { type: "checkbox", id: "import-dry" });
    var report = h("div", { id: "import-report", role: "region", "aria-live": "polite", "aria-label": t("workshop_import_report") });
    page(t("workshop_nav_import"), [
      h("form", { "class": "card", id: "import-form", onsubmit: function (e) {
        e.preventDefault();
        var f = file.files[0];
        if (!f) { report.replaceChildren(h("p", { "class": "error", text: t("workshop_choose_file_first") })); return; }
        f.arrayBuffer().then(function (buf) {
          return api("POST", "/admin/import" + q({ filename: f.name, replace: replace.checked, dry_run: dry.checked }), undefined, buf);
        }).then(function (res) {
          var c = res.counts;
          report.replaceChildren(h("p", { "class": "tag good", text: t(res.dry_run ? "workshop_import_valid" : "workshop_imported", { counts: t("workshop_import_counts",
            { entries: res.entries, create: c.create, update: c.update, unchanged: c.unchanged, "delete": c.delete }) }) }));
          if (!res.dry_run) { watchIndexing(report, res.audit_id); }
        }).catch(function (err) {
          var problems = (err.data && err.data.errors && err.data.errors.length) ? err.data.errors : [{ line: null, entry: "-", field: null, message: err.message }];
          report.replaceChildren(h("p", { "class": "error", text: t("workshop_import_failed", { n: problems.length }) }),
            table(t("workshop_validation_report"), [t("workshop_col_line"), t("workshop_col_entry"), t("workshop_col_field"), t("workshop_col_problem")], problems.map(function (p) {
              return [String(p.line == null ? "–" : p.line), p.entry || "–", p.field || "–", p.text || p.message];
            })));
        });
      } }, [
        h("h2", { text: t("workshop_import_heading") }),
        field("import-file", t("workshop_import_file"), file),
        h("p", {}, [replace, " ", h("label", { "for": "import-replace", style: "display:inline", text: t("workshop_import_replace") })]),
        h("p", {}, [dry, " ", h("label", { "for": "import-dry", style: "display:inline", text: t("workshop_import_dry_run") })]),
        h("button", { type: "submit", text: t("workshop_import_button") })
      ]),
      report,
      h("div", { "class": "card" }, [h("h2", { text: t("workshop_export_heading") }), h("p", {}, ["yaml", "jsonl", "csv"].map(function (f) {
        return h("a", { "class": "button secondary", href: "/api/v1/admin/export" + q({ format: f }), download: "", style: "margin-inline-end:8px",
          text: { yaml: "YAML", jsonl: "JSON Lines", csv: "CSV" }[f] });
      }))])
    ]);
    focusTitle();
  }

  // Polls the index status after an import: "Indexerar n av m" until every worker answers with it, then "Live".
  function watchIndexing(report, auditId) {
    var line = h("p", { id: "import-live", "class": "tag", text: t("workshop_indexing") });
    report.appendChild(line);
    function poll() {
      api("GET", "/knowledge/status").then(function (s) {
        if (s.live && s.audit_id >= auditId) {
          line.className = "tag good";
          line.textContent = t("workshop_index_live");
          return;
        }
        if (!s.workers) { line.textContent = t("workshop_index_no_service"); return; }
        line.textContent = s.total ? t("workshop_indexing_progress", { done: s.done, total: s.total }) : t("workshop_indexing");
        setTimeout(poll, 1000);
      }).catch(function () { setTimeout(poll, 3000); });
    }
    poll();
  }

  // ------------------------------------------------------------------ audit
  function auditTable(rows, withEntry) {
    var headers = [t("workshop_col_time"), t("workshop_col_who"), t("workshop_col_action"), t("workshop_col_changed_fields"), t("workshop_col_before_after")];
    if (withEntry) headers.splice(2, 0, t("workshop_col_entry"));
    return table(t("workshop_changes_count", { n: rows.length }), headers, rows.map(function (r) {
      var cells = [when(r.at), r.actor || "–", said("action_", r.action), (r.changed || []).join(", ") || "–",
        h("details", {}, [h("summary", { text: t("workshop_show") }), h("pre", { text: t("workshop_before") + ":\n" + JSON.stringify(r.before, null, 2) +
          "\n\n" + t("workshop_after") + ":\n" + JSON.stringify(r.after, null, 2) })])];
      if (withEntry) cells.splice(2, 0, h("a", { href: "#edit/" + encodeURIComponent(r.entry_id), text: r.entry_id }));
      return cells;
    }));
  }
  function audit() {
    api("GET", "/admin/audit" + q({ limit: 200 })).then(function (rows) {
      page(t("workshop_nav_audit"), [h("p", { "class": "muted", text: t("workshop_audit_intro") }), auditTable(rows, true)]);
      focusTitle();
    });
  }

  // ------------------------------------------------------------------ freshness
  function reasonText(r) {
    if (r.kind === "overdue") return t("workshop_review_overdue", { days: r.days });
    if (r.kind === "due_soon") return t("workshop_review_due_soon", { days: r.days });
    if (r.kind === "no_review_date") return t("workshop_no_review_date");
    if (r.kind === "unhelpful") return t("workshop_unhelpful_share", { n: r.not_helpful, total: r.helpful + r.not_helpful });
    return r.kind;
  }
  function freshness() {
    api("GET", "/admin/freshness" + q()).then(function (data) {
      page(t("workshop_nav_freshness"), [
        h("p", { "class": "muted", text: t("workshop_freshness_intro") }),
        table(t("workshop_freshness_count", { n: data.items.length }), [t("workshop_col_entry"), t("workshop_col_question"),
          t("workshop_col_review_by"), t("workshop_col_why")], data.items.map(function (i) {
          return [h("a", { href: "#edit/" + encodeURIComponent(i.id), text: i.id }), h("span", { dir: "auto", text: i.question }),
            i.review_by || "–", h("span", {}, i.reasons.map(function (r) {
              return h("span", { "class": "tag " + (r.kind === "overdue" || r.kind === "unhelpful" ? "bad" : "missing"), text: reasonText(r) });
            }))];
        }))]);
      focusTitle();
    });
  }

  // ------------------------------------------------------------------ unanswered questions
  function unanswered() {
    var days = h("select", { id: "gap-days" }, [7, 30, 90, 365].map(function (d) { return h("option", { value: d, text: t("workshop_days", { n: d }), selected: d === 30 }); }));
    var list = h("div", { id: "gap-list" }, [h("p", { text: t("workshop_loading") })]);
    page(t("workshop_nav_unanswered"), [
      h("p", { "class": "muted", text: t("workshop_unanswered_intro") }),
      h("div", { "class": "toolbar" }, [field("gap-days", t("workshop_period"), days)]), list]);
    var allEntries = [], begin = newest();
    function load() {
      var current = begin();
      Promise.all([api("GET", "/admin/unanswered" + q({ days: days.value })), api("GET", "/admin/entries" + q())]).then(function (res) {
        if (!current()) return;
        allEntries = res[1].entries;
        var groups = res[0].groups;
        if (!groups.length) { list.replaceChildren(h("p", { text: t("workshop_no_unanswered") })); return; }
        list.replaceChildren(...groups.map(groupCard));
      });
    }
    function groupCard(g, index) {
      // With no suggestion there is no sensible default: the webmaster must choose (one click must
      // never attach a junk question to the first entry of the list).
      var target = h("select", { id: "variant-" + index, required: true }, [
        g.suggestions.length ? null : h("option", { value: "", text: t("workshop_choose_entry"), selected: true, disabled: true }),
        g.suggestions.length ? h("optgroup", { label: t("workshop_suggestions") }, g.suggestions.map(function (s) {
          return h("option", { value: s.id, text: s.id + " – " + s.question + " (" + s.score.toFixed(2) + ")" });
        })) : null,
        h("optgroup", { label: t("workshop_all_entries") }, allEntries.map(function (e) { return h("option", { value: e.id, text: e.id }); }))
      ]);
      var quoted = t("workshop_quoted", { text: g.representative });
      return h("article", { "class": "card group", "aria-labelledby": "gap-title-" + index }, [
        h("h2", { id: "gap-title-" + index }, [h("span", { dir: "auto", lang: g.language, text: quoted }),
          " – " + t(g.count === 1 ? "workshop_times_one" : "workshop_times", { n: g.count }) + " · " + langName(g.language)]),
        h("p", {}, Object.keys(g.reasons).map(function (r) { return h("span", { "class": "tag missing", text: said("reason_", r) + ": " + g.reasons[r] }); })),
        h("details", {}, [h("summary", { text: t("workshop_wordings", { n: g.texts.length }) }),
          h("ul", {}, g.texts.map(function (t) { return h("li", { dir: "auto", text: t.text + (t.count > 1 ? " (" + t.count + ")" : "") }); }))]),
        g.drafts.length ? h("div", {}, [h("h3", { text: t("workshop_agents_drafts") })].concat(g.drafts.map(function (d) { return h("blockquote", { dir: "auto", text: d }); }))) : null,
        h("div", { "class": "toolbar" }, [
          h("div", {}, [h("button", { type: "button", text: t("workshop_new_entry_from_group"), onclick: function () {
            var questions = {}; questions[g.language] = g.texts.map(function (t) { return t.text; });
            var answer = {}; answer[g.language] = "";
            newEntry.draft = { id: "", questions: questions, answer: answer };
            newEntry.reference = g.drafts; // shown beside the editor; an agent's reply is rarely an answer as it stands
            location.hash = "#new";
          } })]),
          field("variant-" + index, t("workshop_or_add_variant_of"), target),
          h("div", {}, [h("button", { type: "button", "class": "secondary", text: t("workshop_add_variant"), onclick: function () {
            if (!target.value) { toast(t("workshop_choose_entry_first")); target.focus(); return; }
            api("POST", "/admin/variants" + q(), { entry_id: target.value, language: g.language, text: g.representative }).then(function (res) {
              toast(t("workshop_variant_added", { text: quoted, id: res.id }));
              load();
            }).catch(function (err) { toast(t("workshop_could_not_add", { message: err.message })); });
          } })]),
          h("div", {}, [h("button", { type: "button", "class": "danger", text: t("workshop_dismiss_junk"),
            "aria-label": t("workshop_dismiss_junk_label", { text: quoted }), onclick: function () {
              var texts = g.texts.map(function (t) { return t.text; });
              api("POST", "/admin/unanswered/dismiss" + q(), { texts: texts, language: g.language }).then(function () {
                toast(t("workshop_dismissed", { text: quoted }));
                load();
              }).catch(function (err) { toast(t("workshop_could_not_dismiss", { message: err.message })); });
            } })])
        ])
      ]);
    }
    days.addEventListener("change", load);
    load();
    focusTitle();
  }

  // ------------------------------------------------------------------ suggestions from real traffic
  // Question variants and new entries proposed from clarify choices, "yes, that helped" and agents' answers
  // (learning/suggestions.py). Nothing is applied until the webmaster accepts; a dismissed one never returns.
  function suggestionsView() {
    var list = h("div", { id: "suggestion-list" }, [h("p", { text: t("workshop_loading") })]);
    page(t("workshop_nav_suggestions"), [h("p", { "class": "muted", text: t("workshop_suggestions_intro") }), list]);
    function load() {
      api("GET", "/admin/suggestions" + q()).then(function (data) {
        if (!data.suggestions.length) { list.replaceChildren(h("p", { text: t("workshop_no_suggestions") })); return; }
        list.replaceChildren(...data.suggestions.map(card));
      }).catch(function (err) { list.replaceChildren(h("p", { "class": "error", text: err.message })); });
    }
    function card(s) {
      var id = "suggestion-" + s.id;
      var quoted = t("workshop_quoted", { text: s.question });
      var question = h("input", { id: id + "-question", dir: "auto", lang: s.language || "", value: s.question });
      var answer = s.kind === "entry" ? h("textarea", { id: id + "-answer", rows: "4", dir: "auto" }) : null;
      if (answer) answer.value = s.answer || "";
      var others = s.evidence.filter(function (e, i, all) {
        return e.text !== s.question && all.findIndex(function (x) { return x.text === e.text; }) === i;
      });
      var ticks = others.map(function (e, i) {
        var box = h("input", { type: "checkbox", id: id + "-w" + i, value: e.text });
        return h("li", {}, [box, " ", h("label", { "for": id + "-w" + i, dir: "auto", text: e.text }),
          h("span", { "class": "muted", text: " · " + said("suggestion_source_", e.source) + " · " + when(e.at) })]);
      });
      var title = s.kind === "entry" ? t("workshop_suggestion_new_entry")
        : t("workshop_suggestion_variant", { id: s.entry_id, question: s.entry_question || "" });
      return h("article", { "class": "card group", "aria-labelledby": id + "-title" }, [
        h("h2", { id: id + "-title", text: title + " – " + t(s.count === 1 ? "workshop_times_one" : "workshop_times", { n: s.count })
          + " · " + langName(s.language || "sv") }),
        h("p", {}, Object.keys(s.sources).map(function (k) { return h("span", { "class": "tag", text: said("suggestion_source_", k) + ": " + s.sources[k] }); })),
        field(id + "-question", t("workshop_suggestion_question"), question),
        answer ? field(id + "-answer", t("workshop_suggestion_answer"), answer) : null,
        ticks.length ? h("details", {}, [h("summary", { text: t("workshop_suggestion_more_wordings", { n: ticks.length }) }), h("ul", {}, ticks)]) : null,
        h("div", { "class": "toolbar" }, [
          h("div", {}, [h("button", { type: "button", text: t("workshop_accept"), "aria-label": t("workshop_accept_label", { text: quoted }), onclick: function () {
            var body = { question: question.value, wordings: ticks.map(function (li) { return li.querySelector("input"); })
              .filter(function (b) { return b.checked; }).map(function (b) { return b.value; }) };
            if (answer) body.answer = answer.value;
            api("POST", "/admin/suggestions/" + s.id + "/accept" + q(), body).then(function (res) {
              toast(t("workshop_suggestion_accepted", { text: t("workshop_quoted", { text: res.question }), id: res.entry_id }));
              load();
            }).catch(function (err) { toast(t("workshop_could_not_accept", { message: err.message })); });
          } })]),
          h("div", {}, [h("button", { type: "button", "class": "danger", text: t("workshop_dismiss"), "aria-label": t("workshop_dismiss_label", { text: quoted }), onclick: function () {
            api("POST", "/admin/suggestions/" + s.id + "/dismiss" + q()).then(function () {
              toast(t("workshop_suggestion_dismissed"));
              load();
            }).catch(function (err) { toast(t("workshop_could_not_dismiss", { message: err.message })); });
          } })])
        ])
      ]);
    }
    load();
    focusTitle();
  }

  // ------------------------------------------------------------------ test console
  function testConsole() {
    var text = h("textarea", { rows: "3", dir: "auto" });
    var lang = langSelect("console-lang", true);
    var out = h("div", { id: "console-result", "aria-live": "polite" });
    page(t("workshop_nav_console"), [
      h("form", { "class": "card", onsubmit: function (e) {
        e.preventDefault();
        if (!text.value.trim()) return;
        var body = { text: text.value, municipality: muni(), top_k: 10 };
        if (lang.value) body.language = lang.value;
        api("POST", "/answer?explain=true", body).then(function (r) { out.replaceChildren(...renderAnswer(r)); })
          .catch(function (err) { out.replaceChildren(h("p", { "class": "error", text: err.message })); });
      } }, [field("console-text", t("workshop_console_question"), text), field("console-lang", t("workshop_language"), lang),
        h("p", {}, [h("button", { type: "submit", text: t("workshop_console_try") })])]),
      out]);
    focusTitle();
  }
  function renderAnswer(r) {
    var parts = [h("div", { "class": "card" }, [
      h("p", { "class": "decision", text: t("workshop_decision", { decision: said("decision_", r.decision), code: r.decision }) }),
      h("p", { text: t("workshop_console_language", { language: langName(r.language), confidence: Number(r.language_confidence).toFixed(2),
        score: Number(r.confidence).toFixed(3) }) }),
      r.notice ? h("p", { text: t("workshop_console_notice", { notice: r.notice }) }) : null,
      whyText(r)
    ])];
    parts.push(table(t("workshop_ranked_candidates"), ["#", t("workshop_col_entry"), t("workshop_col_score"), t("workshop_col_question"), t("workshop_col_answer")], (r.answers || []).map(function (a, i) {
      return [String(i + 1), a.id.indexOf("notice-") === 0 ? h("span", { text: a.id }) : h("a", { href: "#edit/" + encodeURIComponent(a.id), text: a.id }),
        Number(a.score).toFixed(3), h("span", { dir: "auto", text: a.question }), h("span", { dir: "auto", text: (a.text || "").slice(0, 220) })];
    })));
    if (r.explain) parts.push(h("details", { "class": "card" }, [h("summary", { text: t("workshop_why_details") }), h("pre", { text: JSON.stringify(r.explain, null, 2) })]));
    return parts;
  }
  function whyText(r) {
    var e = r.explain || {};
    var reason = e.reason || e.why || e.rule || (e.notice && e.notice.why && t("workshop_why_notice", { why: e.notice.why }));
    return reason ? h("p", {}, [h("strong", { text: t("workshop_why") + " " }), h("span", { text: typeof reason === "string" ? reason : JSON.stringify(reason) })]) : null;
  }

  // ------------------------------------------------------------------ notices
  function toLocalInput(seconds) {
    var d = new Date(seconds * 1000);
    d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
    return d.toISOString().slice(0, 16);
  }
  function notices() {
    var list = h("div", {});
    var form = h("form", { "class": "card", id: "notice-form" });
    page(t("workshop_notices_title"), [h("p", { "class": "muted", text: t("workshop_notices_intro") }), form, list]);
    function edit(n) {
      n = n || { texts: {}, area: "", keywords: [], url: "", valid_from: Date.now() / 1000, valid_until: Date.now() / 1000 + 86400 };
      var area = h("input", { value: n.area || "" });
      var keywords = h("input", { value: (n.keywords || []).join(", ") });
      var url = h("input", { type: "url", value: n.url || "" });
      var from = h("input", { type: "datetime-local", value: toLocalInput(n.valid_from), required: true });
      var until = h("input", { type: "datetime-local", value: toLocalInput(n.valid_until), required: true });
      var texts = LANGS.map(function (l) {
        var ta = h("textarea", { rows: "3", lang: l, dir: RTL[l] ? "rtl" : "ltr", "data-lang": l });
        ta.value = (n.texts || {})[l] || "";
        return field("notice-" + l, langName(l) + " (" + l + ")", ta);
      });
      var problems = h("div", { role: "alert", "class": "error" });
      form.replaceChildren(
        h("h2", { text: n.id ? t("workshop_edit_notice", { id: n.id }) : t("workshop_new_notice") }),
        h("div", { "class": "grid2" }, [field("notice-area", t("workshop_notice_area"), area),
          field("notice-keywords", t("workshop_notice_keywords"), keywords), field("notice-url", t("workshop_notice_link"), url),
          field("notice-from", t("workshop_valid_from"), from), field("notice-until", t("workshop_valid_until"), until)]),
        h("div", { "class": "grid2" }, texts.slice(0, 2)),
        h("details", {}, [h("summary", { text: t("workshop_more_languages") }), h("div", { "class": "grid2" }, texts.slice(2))]),
        problems,
        h("div", { "class": "toolbar" }, [h("button", { type: "submit", text: n.id ? t("workshop_save_change") : t("workshop_publish") }),
          n.id ? h("button", { type: "button", "class": "secondary", text: t("workshop_cancel"), onclick: function () { edit(null); } }) : null]));
      form.onsubmit = function (e) {
        e.preventDefault();
        var body = { area: area.value, keywords: keywords.value, url: url.value, valid_from: from.value, valid_until: until.value, texts: {} };
        form.querySelectorAll("textarea[data-lang]").forEach(function (ta) { if (ta.value.trim()) body.texts[ta.getAttribute("data-lang")] = ta.value.trim(); });
        (n.id ? api("PUT", "/admin/notices/" + n.id + q(), body) : api("POST", "/admin/notices" + q(), body)).then(function () {
          toast(t("workshop_notice_saved"));
          edit(null); load();
        }).catch(function (err) {
          var ps = (err.data && err.data.errors && err.data.errors.length) ? err.data.errors : [{ field: "", message: err.message }];
          problems.replaceChildren(h("ul", {}, ps.map(function (p) { return h("li", { text: (p.field ? p.field + ": " : "") + (p.text || p.message) }); })));
        });
      };
    }
    function load() {
      api("GET", "/admin/notices" + q()).then(function (rows) {
        var now = Date.now() / 1000;
        list.replaceChildren(table(t("workshop_notices_count", { n: rows.length }), [t("workshop_col_area"), t("workshop_col_text"),
          t("workshop_col_valid"), t("workshop_col_status"), ""], rows.map(function (n) {
          var status = n.valid_until <= now ? "expired" : n.valid_from > now ? "upcoming" : "active";
          return [n.area || t("workshop_whole_municipality"), h("span", { dir: "auto", text: n.text }), when(n.valid_from) + " – " + when(n.valid_until),
            h("span", { "class": "tag " + (status === "active" ? "good" : "missing"), text: t("workshop_status_" + status) }),
            h("span", {}, [h("button", { type: "button", "class": "secondary", text: t("workshop_edit"), "aria-label": t("workshop_edit_notice", { id: n.id }), onclick: function () { edit(n); form.querySelector("input").focus(); } }), " ",
              h("button", { type: "button", "class": "danger", text: t("workshop_delete"), "aria-label": t("workshop_delete_notice", { id: n.id }), onclick: function () {
                if (window.confirm(t("workshop_confirm_delete_notice"))) api("DELETE", "/admin/notices/" + n.id + q()).then(load);
              } })])];
        })));
      });
    }
    edit(null);
    load();
    focusTitle();
  }

  // ------------------------------------------------------------------ dashboard
  var SVGNS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, children) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { if (k === "text") node.textContent = attrs[k]; else node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  // Charts are drawn at the width they get on the page (one SVG unit = one CSS pixel), so their text
  // is FONT px at any window size; a window resize draws them again.
  var FONT = 13;
  function textWidth(text) { return String(text).length * FONT * 0.6; }
  function barChart(title, labels, series, colors, summary) {
    // Vertical (stacked) bars; `series` is a list of arrays of the same length as `labels`.
    return function (W) {
      var H = 240, pad = Math.max(30, textWidth("0000") + 6), base = H - FONT - 10, n = labels.length;
      var totals = labels.map(function (_, i) { return series.reduce(function (sum, ser) { return sum + ser[i]; }, 0); });
      var max = Math.max(1, Math.max.apply(null, totals));
      var bw = (W - pad - 8) / Math.max(1, n);
      var every = Math.max(1, Math.ceil((textWidth(labels[0] || "") + 8) / bw));
      var svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "aria-label": title + ": " + summary });
      svg.appendChild(s("line", { x1: pad, y1: base, x2: W, y2: base, stroke: "#6b6b6b" }));
      svg.appendChild(s("text", { x: 0, y: FONT, text: String(max) }));
      labels.forEach(function (label, i) {
        var y = base;
        series.forEach(function (ser, k) {
          var hgt = (ser[i] / max) * (base - FONT - 8);
          if (hgt > 0) svg.appendChild(s("rect", { x: pad + i * bw + 1, y: y - hgt, width: Math.max(1, bw - 2), height: hgt, fill: colors[k] }, [s("title", { text: label + ": " + ser[i] })]));
          y -= hgt;
        });
        if (i % every === 0) svg.appendChild(s("text", { x: pad + i * bw, y: H - 4, text: label }));
      });
      return svg;
    };
  }
  function hbars(title, rows, color) {
    // One row per item: its label on a line of its own, the bar and its value below it.
    return function (W) {
      var rowH = FONT * 2 + 14, H = Math.max(1, rows.length) * rowH + 4;
      var max = Math.max(1, Math.max.apply(null, rows.map(function (r) { return r[1]; }).concat([1])));
      var room = W - textWidth("00000") - 8;
      var svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
        "aria-label": title + ": " + rows.map(function (r) { return r[0] + " " + r[1]; }).join(", ") });
      rows.forEach(function (r, i) {
        var w = (r[1] / max) * room, top = i * rowH;
        var label = String(r[0]), fits = Math.floor(W / (FONT * 0.6)) - 1;
        svg.appendChild(s("text", { x: 0, y: top + FONT, text: label.length > fits ? label.slice(0, fits - 1) + "…" : label }));
        svg.appendChild(s("rect", { x: 0, y: top + FONT + 4, width: Math.max(1, w), height: FONT + 2, fill: color }));
        svg.appendChild(s("text", { x: w + 6, y: top + 2 * FONT + 4, text: String(r[1]) }));
      });
      return svg;
    };
  }
  function figure(title, chart, headers, rows) {
    var holder = h("div", { "class": "chart" });
    var node = h("figure", { "class": "card" }, [h("figcaption", { text: title }), holder,
      h("details", {}, [h("summary", { text: t("workshop_show_as_table") }), table(title, headers, rows.map(function (r) { return r.map(String); }))])]);
    node.draw = function () { holder.replaceChildren(chart(Math.max(200, Math.floor(holder.clientWidth)))); };
    return node;
  }
  function drawCharts(container) {
    container.querySelectorAll("figure").forEach(function (f) { if (f.draw) f.draw(); });
  }
  function answeredTitle(x) {
    if (x.kind === "notice") return t("workshop_notice_answered", { area: x.question || t("workshop_no_area") });
    if (x.kind === "deleted") return t("workshop_deleted_entry");
    return x.question;
  }
  function reasonLabel(code) { return said("handoff_reason_", code); }
  function dashboard() {
    var days = h("select", { id: "dash-days" }, [7, 30, 90, 365].map(function (d) { return h("option", { value: d, text: t("workshop_days", { n: d }), selected: d === 30 }); }));
    var body = h("div", {});
    var settings = h("form", { "class": "card", id: "cost-form" });
    page(t("workshop_nav_dashboard"), [h("div", { "class": "toolbar" }, [field("dash-days", t("workshop_period"), days)]), body, settings]);
    var begin = newest();
    function load() {
      var current = begin();
      api("GET", "/admin/dashboard" + q({ days: days.value })).then(function (d) {
        if (!current()) return;
        var pct = d.deflection_rate == null ? "–" : Math.round(d.deflection_rate * 100) + " %";
        var sat = d.satisfaction.average == null ? "–" : t("workshop_out_of_five", { value: d.satisfaction.average.toFixed(1) });
        var money = new Intl.NumberFormat(language() === "sv" ? "sv-SE" : "en-GB", { maximumFractionDigits: 0 }).format(d.saving.amount) + " " + d.saving.currency;
        var hoursLabels = d.busiest_hours.map(function (_, i) { return String(i); });
        var langs = Object.keys(d.languages).map(function (l) { return [langName(l), d.languages[l]]; });
        var dist = ["1", "2", "3", "4", "5"].map(function (k) { return d.satisfaction.distribution[k] || 0; });
        body.replaceChildren(
          h("div", { "class": "kpis" }, [
            kpi(t("workshop_kpi_conversations"), d.conversations), kpi(t("workshop_kpi_deflected"), pct + " (" + d.deflected + ")"),
            kpi(t("workshop_kpi_handed_over"), d.handed_over), kpi(t("workshop_kpi_satisfaction"), t("workshop_kpi_responses", { value: sat, n: d.satisfaction.responses })),
            kpi(t("workshop_kpi_saving"), money)]),
          // The server's formula (insights/unanswered.py) in words: deflected × cost per call + handed over × (cost per call − cost per chat).
          h("p", { "class": "muted", text: t("workshop_saving_formula", { call: d.saving.cost_per_call + " " + d.saving.currency,
            chat: d.saving.cost_per_chat + " " + d.saving.currency }) }),
          h("div", { "class": "charts" }, [
            figure(t("workshop_chart_per_day"), barChart(t("workshop_chart_per_day"), d.per_day.map(function (x) { return x.day.slice(5); }),
              [d.per_day.map(function (x) { return x.bot; }), d.per_day.map(function (x) { return x.handed_over; })], ["#0b4f8a", "#c05600"],
              t("workshop_chart_per_day_summary", { n: d.conversations, m: d.handed_over })),
              [t("workshop_col_day"), t("workshop_col_bot"), t("workshop_col_agent")], d.per_day.map(function (x) { return [x.day, x.bot, x.handed_over]; })),
            figure(t("workshop_chart_busiest"), barChart(t("workshop_chart_messages_per_hour"), hoursLabels, [d.busiest_hours], ["#0b4f8a"],
              t("workshop_chart_busiest_summary", { hour: d.busiest_hours.indexOf(Math.max.apply(null, d.busiest_hours)) })),
              [t("workshop_col_hour"), t("workshop_col_messages")], d.busiest_hours.map(function (v, i) { return [i + ":00", v]; })),
            figure(t("workshop_chart_languages"), hbars(t("workshop_chart_per_language"), langs, "#2e6b31"), [t("workshop_col_language"), t("workshop_col_conversations")], langs),
            figure(t("workshop_chart_satisfaction"), barChart(t("workshop_chart_ratings"), ["1", "2", "3", "4", "5"], [dist], ["#6a3d9a"],
              t("workshop_chart_ratings_summary", { n: d.satisfaction.responses, helpful: d.satisfaction.helpful, not_helpful: d.satisfaction.not_helpful })),
              [t("workshop_col_rating"), t("workshop_col_count")], dist.map(function (v, i) { return [i + 1, v]; })),
            figure(t("workshop_chart_top_questions"), hbars(t("workshop_chart_top_questions"), d.top_questions.map(function (x) { return [answeredTitle(x), x.count]; }), "#0b4f8a"),
              [t("workshop_col_question"), t("workshop_col_count")], d.top_questions.map(function (x) { return [answeredTitle(x), x.count]; })),
            figure(t("workshop_chart_reasons"), hbars(t("workshop_chart_reasons"), Object.keys(d.handoff_reasons).map(function (k) { return [reasonLabel(k), d.handoff_reasons[k]]; }), "#c05600"),
              [t("workshop_col_reason"), t("workshop_col_count")], Object.keys(d.handoff_reasons).map(function (k) { return [reasonLabel(k), d.handoff_reasons[k]]; }))
          ]));
        drawCharts(body);
      });
    }
    function kpi(label, value) { return h("div", { "class": "kpi" }, [h("span", { "class": "value", text: String(value) }), h("span", { text: label })]); }
    api("GET", "/admin/settings" + q()).then(function (st) {
      var call = h("input", { type: "number", min: "0", step: "0.5", value: st.cost_per_call });
      var chat = h("input", { type: "number", min: "0", step: "0.5", value: st.cost_per_chat });
      var cur = h("input", { value: st.currency, maxlength: "8" });
      settings.replaceChildren(h("h2", { text: t("workshop_costs_heading") }),
        h("div", { "class": "grid2" }, [field("cost-call", t("workshop_cost_per_call"), call), field("cost-chat", t("workshop_cost_per_chat"), chat),
          field("cost-currency", t("workshop_currency"), cur)]),
        h("p", {}, [h("button", { type: "submit", text: t("workshop_save_costs") })]));
      settings.onsubmit = function (e) {
        e.preventDefault();
        api("PUT", "/admin/settings" + q(), { cost_per_call: Number(call.value), cost_per_chat: Number(chat.value), currency: cur.value, required_languages: st.required_languages })
          .then(function () { toast(t("workshop_costs_saved")); load(); }).catch(function (err) { toast(err.message); });
      };
    });
    days.addEventListener("change", load);
    dashboard.body = body;
    if (!dashboard.listening) {
      dashboard.listening = true;
      window.addEventListener("resize", function () {
        clearTimeout(dashboard.resize);
        dashboard.resize = setTimeout(function () { if (dashboard.body.isConnected) drawCharts(dashboard.body); }, 150);
      });
    }
    load();
    focusTitle();
  }

  // The words first (the login form needs them too), then the language switch, then who is logged in.
  function init() {
    return loadTexts(staffLanguage(), "workshop_").catch(function () { /* the keys stay visible: a test catches it */ })
      .then(function () {
        translatePage();
        var select = $("staff-lang");
        select.replaceChildren(...Object.keys(STAFF_LANGUAGES).map(function (code) {
          return h("option", { value: code, text: STAFF_LANGUAGES[code], selected: code === language() });
        }));
        select.addEventListener("change", function () { chooseLanguage(select.value); location.reload(); });
        return start();
      });
  }
  init();
})();
