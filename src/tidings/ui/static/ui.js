// Tidings UI: the few live parts of server-rendered pages. No framework, no inline script
// (the pages' Content-Security-Policy forbids it), no HTML built from data: text goes in
// through textContent, and fragments come only from this server's own pages.
"use strict";

(function () {
  var CSRF = document.body.getAttribute("data-csrf-header") || "x-tidings-ui";
  var STATUS_CLASSES = {
    DELIVERED: "badge-good", OPENED: "badge-good", CLICKED: "badge-good",
    UNDELIVERABLE: "badge-bad", UNROUTABLE: "badge-bad", CANCELED: "badge-muted"
  };

  function badgeClass(status) {
    return "badge " + (STATUS_CLASSES[status] || "badge-neutral");
  }

  function setBadge(el, status) {
    if (!el || !status || el.textContent === status) return false;
    el.textContent = status;
    el.className = badgeClass(status);
    el.classList.add("changed");
    return true;
  }

  function setLiveState(text, cls) {
    var el = document.querySelector("[data-live-state]");
    if (!el) return;
    el.textContent = "live updates: " + text;
    el.className = "live-state " + (cls || "");
  }

  // An EventSource that says whether it works. A missing endpoint (404) closes the source
  // for good; a dropped connection makes the browser retry on its own.
  function follow(url, onUpdate) {
    if (!window.EventSource) { setLiveState("not supported by this browser", "off"); return; }
    var source = new EventSource(url);
    source.addEventListener("open", function () { setLiveState("on", "on"); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) setLiveState("unavailable", "off");
      else setLiveState("reconnecting…", "off");
    });
    source.addEventListener("message:updated", function (event) {
      var details;
      try { details = JSON.parse(event.data); } catch (e) { return; }
      if (details && typeof details === "object") onUpdate(details);
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function fmtTime(ms) {
    if (typeof ms !== "number") return "";
    return new Date(ms).toISOString().replace("T", " ");
  }

  // -- message list ---------------------------------------------------------------------
  function listPage(table) {
    var tbody = table.tBodies[0];
    var insert = table.hasAttribute("data-live-insert");
    follow(table.getAttribute("data-stream"), function (d) {
      var row = tbody.querySelector('tr[data-message-id="' + CSS.escape(String(d.id)) + '"]');
      if (row) { setBadge(row.querySelector("[data-badge]"), d.status); return; }
      if (!insert) return;
      var empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      tbody.insertBefore(newRow(d), tbody.firstChild);
    });
  }

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text || "";
    return td;
  }

  function newRow(d) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-message-id", d.id);
    tr.className = "new";
    var status = document.createElement("td");
    var badge = document.createElement("span");
    badge.setAttribute("data-badge", "");
    badge.className = badgeClass(d.status);
    badge.textContent = d.status;
    status.appendChild(badge);
    tr.appendChild(status);
    tr.appendChild(cell(d.recipientEmail || d.recipient));
    tr.appendChild(cell(""));
    tr.appendChild(cell(""));
    var when = cell(fmtTime(d.enqueued));
    when.className = "nowrap";
    tr.appendChild(when);
    var idCell = document.createElement("td");
    var link = document.createElement("a");
    link.href = "/ui/messages/" + encodeURIComponent(d.id);
    var code = document.createElement("code");
    code.textContent = d.id;
    link.appendChild(code);
    idCell.appendChild(link);
    tr.appendChild(idCell);
    return tr;
  }

  // -- one message ----------------------------------------------------------------------
  function messagePage(region) {
    var pending = null;
    follow(region.getAttribute("data-stream"), function (d) {
      if (String(d.id) !== region.getAttribute("data-message-id")) return;
      setBadge(document.getElementById("status"), d.status);
      // The timeline, hint and facts are re-read from this page on the server (coalesced,
      // as events of one message often come in bursts), so the browser never renders data.
      if (pending) return;
      pending = setTimeout(function () {
        pending = null;
        refreshRegion(region);
      }, 250);
    });
  }

  function refreshRegion(region) {
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live-region");
        var current = document.getElementById("live-region");
        if (!fresh || !current) return;
        // Keep open the raw-event panels the reader had opened.
        var open = {};
        current.querySelectorAll("details[open]").forEach(function (el, i) { open[i] = true; });
        current.replaceChildren.apply(current, Array.prototype.slice.call(fresh.childNodes));
        current.querySelectorAll("details").forEach(function (el, i) { if (open[i]) el.open = true; });
        var status = doc.getElementById("status");
        if (status) setBadge(document.getElementById("status"), status.textContent);
      })
      .catch(function () { /* the next update tries again */ });
  }

  // -- provider page --------------------------------------------------------------------
  function copyButton(button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    var state = document.getElementById("copy-state");
    function done(ok) {
      if (state) state.textContent = ok ? "Copied" : "Press Ctrl+C to copy";
    }
    button.addEventListener("click", function () {
      var text = target.value;
      // navigator.clipboard needs a secure context (https or localhost); else select the
      // text and use the old copy command, and failing that leave it selected for the user.
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
      } else {
        fallback();
      }
      function fallback() {
        target.focus();
        target.select();
        var ok = false;
        try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
        done(ok);
      }
    });
  }

  function pollingSwitch(group) {
    var state = document.getElementById("polling-state");
    var url = group.getAttribute("data-provider-url");
    var current = (group.querySelector("input:checked") || {}).value;
    group.addEventListener("change", function (event) {
      var mode = event.target.value;
      state.textContent = "saving…";
      var headers = { "Content-Type": "application/json" };
      headers[CSRF] = "1";
      fetch(url, {
        method: "PATCH",
        credentials: "same-origin",
        headers: headers,
        body: JSON.stringify({ settings: { polling: mode } })
      })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (!r.ok) throw new Error(body.message || ("HTTP " + r.status));
            return body;
          });
        })
        .then(function (body) {
          current = (body.settings && body.settings.polling) || mode;
          state.textContent = "saved: " + current;
          state.className = "switch-state ok";
        })
        .catch(function (err) {
          state.textContent = "not saved: " + err.message;
          state.className = "switch-state error-text";
          var previous = group.querySelector('input[value="' + current + '"]');
          if (previous) previous.checked = true;
        });
    });
  }

  function doctor(box) {
    var url = box.getAttribute("data-doctor-url");
    var stateEl = box.querySelector("[data-doctor-state]");
    var table = box.querySelector("table");
    var tbody = table.tBodies[0];
    function run() {
      stateEl.hidden = false;
      stateEl.textContent = "Running checks…";
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            // A 400/502 from the doctor says in words what is wrong (key, region, network).
            if (!r.ok) throw new Error(body.message || ("HTTP " + r.status));
            return body;
          });
        })
        .then(function (body) {
          var checks = Array.isArray(body) ? body : (body && (body.checks || body.results)) || [];
          var summary = box.querySelector("[data-doctor-summary]");
          if (summary && !Array.isArray(body)) {
            summary.textContent = [body.status ? "overall: " + body.status : "",
              body.route ? "route: " + body.route : ""].filter(Boolean).join(" · ");
          }
          tbody.replaceChildren();
          checks.forEach(function (c) {
            var tr = document.createElement("tr");
            tr.appendChild(cell(c.name));
            var result = document.createElement("td");
            var badge = document.createElement("span");
            var status = String(c.status || "").toLowerCase();
            badge.className = "badge " + (status === "ok" || status === "pass" ? "badge-good"
              : status === "warn" || status === "warning" || status === "skip" ? "badge-warn"
              : status === "fail" || status === "error" ? "badge-bad" : "badge-neutral");
            badge.textContent = c.status || "";
            result.appendChild(badge);
            tr.appendChild(result);
            tr.appendChild(cell(c.detail));
            tr.appendChild(cell(c.fix));
            tbody.appendChild(tr);
          });
          table.hidden = checks.length === 0;
          stateEl.textContent = checks.length ? "" : "The doctor found nothing to check.";
          stateEl.hidden = checks.length > 0;
        })
        .catch(function (err) {
          table.hidden = true;
          stateEl.textContent = "Doctor unavailable (" + err.message + "). Run `tidings doctor` on the server.";
        });
    }
    var again = document.getElementById("doctor-run");
    if (again) again.addEventListener("click", run);
    run();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("messages");
    if (list) listPage(list);
    var region = document.getElementById("live-region");
    if (region) messagePage(region);
    document.querySelectorAll("[data-copy-target]").forEach(copyButton);
    var polling = document.getElementById("polling");
    if (polling) pollingSwitch(polling);
    var box = document.getElementById("doctor");
    if (box) doctor(box);
  });
})();
