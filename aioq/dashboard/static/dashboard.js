// aioq dashboard: live updates over Server-Sent Events. Values are set with textContent
// only, never as HTML, so nothing a job carries can run here.
(function () {
  "use strict";
  const root = document.querySelector('meta[name="aioq-root"]').content;
  const live = document.getElementById("live");

  function fmtTime(t) {
    if (t === null || t === undefined) return "";
    return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function fmtAgo(s) {
    s = Math.max(0, Math.round(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h + ":" + String(m).padStart(2, "0") + ":" + String(r).padStart(2, "0");
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function spark(svg, values) {
    const ns = "http://www.w3.org/2000/svg";
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    if (!values.length) return;
    const max = Math.max(1, ...values), w = 120 / values.length;
    values.forEach(function (v, i) {
      const h = Math.round((v / max) * 22);
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * w));
      r.setAttribute("y", String(24 - h));
      r.setAttribute("width", String(Math.max(1, w - 1)));
      r.setAttribute("height", String(h));
      svg.appendChild(r);
    });
    svg.setAttribute("aria-label", "throughput, last: " + values[values.length - 1]);
  }
  document.querySelectorAll("svg.spark").forEach(function (svg) {
    const raw = svg.getAttribute("data-values") || "";
    spark(svg, raw ? raw.split(",").map(Number) : []);
  });

  let reloaded = false;
  function onQueues(queues) {
    const table = document.getElementById("queues-table");
    if (!table) return;
    const rows = table.querySelectorAll("tbody tr[data-queue]");
    const known = new Set(Array.from(rows).map(function (r) { return r.dataset.queue; }));
    let workers = 0;
    queues.forEach(function (q) {
      if (!known.has(q.name) && !reloaded) { reloaded = true; window.location.reload(); }
    });
    queues.forEach(function (q) {
      const row = Array.from(rows).find(function (r) { return r.dataset.queue === q.name; });
      if (!row) return;
      ["queued", "by_level", "running", "retrying", "delayed", "waiting", "workers"].forEach(function (f) {
        const cell = row.querySelector('[data-field="' + f + '"]');
        if (cell) cell.textContent = String(q[f]);
      });
      const dead = row.querySelector('[data-field="dead"]');
      if (dead) {
        dead.textContent = "";
        if (q.dead) {
          const a = el("a", q.dead);
          a.href = root + "/dead?queue=" + encodeURIComponent(q.name);
          dead.appendChild(a);
        } else dead.textContent = "0";
      }
      const state = row.querySelector('[data-field="state"]');
      if (state) {
        state.textContent = "";
        let text = q.paused ? "paused" : "running";
        if (q.paused && q.paused_until && q.paused_until < 253402300000) text += " until " + fmtTime(q.paused_until);
        state.appendChild(el("span", text, q.paused ? "paused" : "running"));
      }
      const pause = row.querySelector(".pause-form"), resume = row.querySelector(".resume-form");
      if (pause) pause.hidden = q.paused;
      if (resume) resume.hidden = !q.paused;
      const svg = row.querySelector("svg.spark");
      if (svg) spark(svg, q.throughput);
    });
  }

  function onWorkers(workers) {
    const count = document.getElementById("worker-count");
    if (count) count.textContent = String(workers.filter(function (w) { return w.status !== "dead"; }).length);
    const table = document.getElementById("workers-table");
    if (!table) return;
    const body = table.querySelector("tbody");
    const rows = workers.map(function (w) {
      const tr = document.createElement("tr");
      tr.dataset.worker = w.id;
      tr.className = "worker-" + w.status;
      const status = el("td");
      status.appendChild(el("span", w.status, "status status-" + w.status));
      tr.appendChild(status);
      tr.appendChild(el("td", w.id, "mono"));
      tr.appendChild(el("td", w.hostname));
      tr.appendChild(el("td", w.pid, "num"));
      tr.appendChild(el("td", (w.queues || []).join(", ")));
      tr.appendChild(el("td", w.concurrency, "num"));
      tr.appendChild(el("td", w.active, "num"));
      tr.appendChild(el("td", w.processed, "num"));
      tr.appendChild(el("td", w.failed, "num"));
      tr.appendChild(el("td", fmtAgo(w.uptime)));
      tr.appendChild(el("td", fmtTime(w.heartbeat_at) + " (" + fmtAgo(w.age) + " ago)"));
      tr.appendChild(el("td", w.version));
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = el("td", "No workers.", "empty");
      td.colSpan = 12;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
  }

  function eventItem(e, withJob) {
    const li = document.createElement("li");
    li.appendChild(el("time", fmtTime(e.at)));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", e.kind, "kind kind-" + e.kind));
    if (withJob) {
      li.appendChild(document.createTextNode(" "));
      const a = el("a", e.id);
      a.href = root + "/jobs/" + encodeURIComponent(e.id);
      li.appendChild(a);
      li.appendChild(document.createTextNode(" " + (e.task || "") + " "));
      li.appendChild(el("span", e.queue, "muted"));
    } else {
      if (e.attempt) li.appendChild(document.createTextNode(" attempt " + e.attempt));
      if (e.error) li.appendChild(document.createTextNode(" " + e.error.type + ": " + e.error.message));
    }
    return li;
  }

  function onEvents(events) {
    const list = document.getElementById("events-list");
    if (list) {
      events.forEach(function (e) { list.insertBefore(eventItem(e, true), list.firstChild); });
      while (list.children.length > 20) list.removeChild(list.lastChild);
    }
    const timeline = document.getElementById("job-timeline");
    if (timeline) {
      const mine = events.filter(function (e) { return e.id === timeline.dataset.job; });
      mine.forEach(function (e) { timeline.appendChild(eventItem(e, false)); });
      const state = document.getElementById("job-state");
      if (!state) return;
      // Events come from producer and workers on separate connections, so they can arrive
      // out of order: the state follows the latest by time, never an older one.
      let latest = null;
      mine.forEach(function (e) {
        if (e.at >= Number(state.dataset.at || 0) && (!latest || e.at >= latest.at)) latest = e;
      });
      if (latest) {
        const map = { enqueued: "queued", started: "running", progress: "running" };
        const text = map[latest.kind] || latest.kind;
        state.textContent = text;
        state.className = "state state-" + text;
        state.dataset.at = latest.at;
      }
    }
  }

  function handler(fn) {
    return function (msg) {
      try { fn(JSON.parse(msg.data)); } catch (err) { console.error(err); }
    };
  }

  if (window.EventSource) {
    const source = new EventSource(root + "/api/stream");
    source.addEventListener("open", function () {
      live.textContent = "live"; live.className = "live on";
    });
    source.addEventListener("error", function () {
      live.textContent = "reconnecting"; live.className = "live off";
    });
    source.addEventListener("queues", handler(onQueues));
    source.addEventListener("workers", handler(onWorkers));
    source.addEventListener("events", handler(onEvents));
    window.addEventListener("beforeunload", function () { source.close(); });
  }
})();
