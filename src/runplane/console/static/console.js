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

function syncButtons() {
  // which actions the run's state allows: its page's buttons follow it live
  const state = document.getElementById("run-state");
  if (!state) return;
  const active = state.dataset.active === "true";
  const show = {
    // a stopped run may be stopped again: the answer says it already was
    "stop": active || state.dataset.status === "interrupted",
    "stop-tree": Number(state.dataset.tree) > 1,
    "resume": state.dataset.status === "interrupted", "delete": !active,
  };
  for (const [act, shown] of Object.entries(show)) {
    const button = document.querySelector(`.actions button[data-act="${act}"]`);
    if (button) button.hidden = !shown;
  }
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
    live(data) { live.innerHTML = data.html; localTimes(live); syncButtons(); },
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
    if (kind === "continue") value = null;
    if (kind === "edited") {
      try { value = JSON.parse(form.querySelector("[name=answer]").value); }
      catch (err) { say("the answer is not JSON: " + err.message, false); return; }
    }
    const path = kind === "continue" ? "continue" : "resume";
    const answer = await fetch(`/ui/threads/${encodeURIComponent(form.dataset.thread)}/${path}`, {
      method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({value}),
    });
    const said = await answer.json().catch(() => ({ok: false, message: answer.statusText}));
    say(said.message || said.detail || answer.statusText, answer.ok && said.ok);
    if (said.ok && said.run_id) location.href = `/ui/runs/${encodeURIComponent(said.run_id)}`;
  });
}

function opsPage() {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const keep = Number(charts.dataset.keep || 90);
  const series = {pending: [], running: [], throughput: [], latency: []};
  let last = null;
  const draw = (name, value, shown) => {
    const points = series[name];
    points.push(value);
    while (points.length > keep) points.shift();
    const top = Math.max(1e-9, ...points);
    const step = 300 / Math.max(1, keep - 1);
    charts.querySelector(`[data-chart="${name}"] polyline`).setAttribute("points",
      points.map((v, i) => `${(i * step).toFixed(1)},${(58 - 56 * v / top).toFixed(1)}`).join(" "));
    charts.querySelector(`[data-figure="${name}"]`).textContent = shown;
  };
  follow(charts.dataset.feed, {
    sample(s) {
      draw("pending", s.pending, s.pending);
      draw("running", s.running, s.running);
      if (last) {
        const seconds = Math.max(1e-3, s.at - last.at);
        const rate = (s.finished - last.finished) / seconds;
        draw("throughput", rate, rate.toFixed(1));
        const cancels = s.cancels - last.cancels;
        const ms = cancels > 0 ? 1000 * (s.cancel_seconds - last.cancel_seconds) / cancels : 0;
        draw("latency", ms, cancels > 0 ? ms.toFixed(1) : "–");
      }
      last = s;
      document.getElementById("workers").innerHTML = s.workers;
      localTimes(document.getElementById("workers"));
    },
  });
}

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  const said = await answer.json().catch(() => ({ok: false, message: answer.statusText}));
  return {ok: answer.ok && said.ok, said};
}

function signIn() {
  const form = document.getElementById("login");
  if (form) form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const {ok, said} = await post("/ui/login", {key: form.elements.key.value});
    say(said.message || said.detail, ok);
    if (ok) location.href = "/ui";
  });
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    await post("/ui/logout");
    location.href = "/ui/login";
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
  opsPage();
  signIn();
});
