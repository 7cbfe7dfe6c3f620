// runplane console: local and relative times, live feeds (SSE), and the action buttons.
"use strict";

function relative(date) {
  const s = Math.round((Date.now() - date.getTime()) / 1000);
  if (s < 0) return "in " + (-s) + " s";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const date = new Date(el.getAttribute("datetime"));
    if (isNaN(date)) continue;
    el.title = date.toLocaleString();
    el.textContent = relative(date);
  }
}

function say(message, ok) {
  const el = document.getElementById("said");
  el.textContent = message;
  el.classList.toggle("bad", !ok);
  el.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function follow(url, handlers) {
  const source = new EventSource(url);
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => handle(JSON.parse(e.data), source));
  }
  return source;
}

function runsPage() {
  const table = document.querySelector("table.runs[data-feed]");
  if (!table) return;
  follow(table.dataset.feed + location.search, {
    rows(data) {
      document.getElementById("rows").innerHTML = data.rows;
      for (const [status, n] of Object.entries(data.counts)) {
        const b = document.querySelector(`.count[data-status="${status}"] b`);
        if (b) b.textContent = n;
      }
      localTimes(document.getElementById("rows"));
    },
  });
}

function runPage() {
  const live = document.getElementById("live");
  if (!live) return;
  const log = document.getElementById("log");
  const keep = Number(log.dataset.keep || 500);
  follow(live.dataset.feed, {
    line(data) {
      if (log.querySelector(`[data-seq="${data.seq}"]`)) return;
      log.insertAdjacentHTML("beforeend", data.html);
      while (log.children.length > keep) log.firstElementChild.remove();
      localTimes(log.lastElementChild);
      log.scrollTop = log.scrollHeight;
    },
    live(data) { live.innerHTML = data.html; localTimes(live); },
    end(_data, source) { source.close(); },
  });
  const actions = document.querySelector(".actions[data-run]");
  actions.addEventListener("click", async (e) => {
    const act = e.target.closest("button[data-act]")?.dataset.act;
    if (!act) return;
    const run = actions.dataset.run;
    const body = {};
    let path = act;
    if (act === "stop" || act === "stop-tree") {
      path = "stop";
      body.reason = actions.querySelector("[name=reason]").value || null;
      body.action = actions.querySelector("[name=action]").value;
      body.scope = act === "stop-tree" ? "tree" : "run";
    }
    if (act === "delete" && !confirm("Delete this run and its log?")) return;
    const answer = await fetch(`/ui/runs/${encodeURIComponent(run)}/${path}`, {
      method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify(body),
    });
    const said = await answer.json().catch(() => ({ok: false, message: answer.statusText}));
    say(said.message || said.detail || answer.statusText, answer.ok && said.ok);
    if (act === "delete" && said.ok) location.href = "/ui";
    if (act === "resume" && said.ok) location.reload();
  });
}

function threadPage() {
  const form = document.querySelector(".interrupt[data-thread]");
  if (!form) return;
  form.addEventListener("click", async (e) => {
    const kind = e.target.closest("button[data-answer]")?.dataset.answer;
    if (!kind) return;
    let value = kind;
    if (kind === "edited") {
      try { value = JSON.parse(form.querySelector("[name=answer]").value); }
      catch (err) { say("the answer is not JSON: " + err.message, false); return; }
    }
    const answer = await fetch(`/ui/threads/${encodeURIComponent(form.dataset.thread)}/resume`, {
      method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({value}),
    });
    const said = await answer.json().catch(() => ({ok: false, message: answer.statusText}));
    say(said.message || said.detail || answer.statusText, answer.ok && said.ok);
    if (said.ok && said.run_id) location.href = `/ui/runs/${encodeURIComponent(said.run_id)}`;
  });
}

document.addEventListener("keydown", (e) => {
  if (e.key === "/" && !/INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) {
    const search = document.querySelector("[data-shortcut='/']");
    if (search) { e.preventDefault(); search.focus(); }
  }
});
document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  setInterval(() => localTimes(document), 5000);
  runsPage();
  runPage();
  threadPage();
});
