// PikcelAI jobs: the pages' one first-party module (no build step, no dependencies).
// Everything here enhances server-rendered HTML that already works without it:
//  - live updates: ONE EventSource per page (/api/events), applied in place by jobId,
//    with a pause toggle (updates are held while paused and applied on resume);
//  - row selection and bulk actions with a confirmation that counts the jobs touched,
//    then live progress of the bulk operation;
//  - one job's actions through the JSON API (no page reload);
//  - the before/after comparison slider; local times; the new-job form's estimate
//    and product search.

const STATUS_TONES = {
  scheduled: "neutral", pending: "info", processing: "attention",
  completed: "success", failed: "critical", cancelled: "neutral",
};
const PUSH_TONES = {
  none: "neutral", awaiting_review: "attention", rejected: "critical", queued: "info",
  uploading: "info", attached: "info", pushed: "success", failed: "critical",
  reverting: "info", reverted: "neutral",
};
const ACTIVE = new Set(["scheduled", "pending", "processing"]);
const RUNNING = new Set(["pending", "processing"]);
const BULK_ELIGIBLE = {
  retry: new Set(["failed", "cancelled"]),
  sync: new Set(["pending", "processing"]),
  cancel: new Set(["scheduled", "pending", "processing"]),
};
const BULK_WORDS = { retry: ["Retry", "retried"], sync: ["Sync", "synced"], cancel: ["Cancel", "cancelled"] };

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const csrfToken = () => $('meta[name="csrf-token"]')?.content ?? "";
const capitalize = (s) => (s ? s.charAt(0).toUpperCase() + s.slice(1) : s);
const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;

function localTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function timeElement(iso) {
  const t = document.createElement("time");
  t.dateTime = iso;
  t.textContent = localTime(iso);
  return t;
}

function duration(ms) {
  if (ms == null) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.floor((ms % 60000) / 1000)} s`;
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch { /* not JSON */ }
  return { status: response.status, data };
}

function flash(message, level = "info") {
  const box = $("[data-flashes]");
  if (!box) return;
  const banner = document.createElement("div");
  banner.className = `banner banner--${level}`;
  const p = document.createElement("p");
  p.textContent = message;
  banner.append(p);
  box.replaceChildren(banner);
}

// ---------------------------------------------------------------- applying job state

function setBadge(el, tones, value) {
  for (const cls of Array.from(el.classList)) if (cls.match(/^badge--(success|info|attention|critical|neutral)$/)) el.classList.remove(cls);
  el.classList.add(`badge--${tones[value] ?? "neutral"}`);
  el.dataset.status = value;
  const text = $("[data-text]", el) ?? el;
  text.textContent = capitalize(String(value).replaceAll("_", " "));
}

function ownFields(container) {
  // Fields of this job only (not of a nested [data-job-id], e.g. attempts).
  const own = (el) => el.closest("[data-job-id]") === container;
  const map = new Map();
  for (const el of $$("[data-field]", container)) if (own(el)) {
    const list = map.get(el.dataset.field) ?? [];
    list.push(el);
    map.set(el.dataset.field, list);
  }
  return { get: (name) => map.get(name) ?? [], shows: $$("[data-show-when]", container).filter(own) };
}

function applyToContainer(container, job) {
  if (container.dataset.attempt && Number(container.dataset.attempt) !== job.attempt) return; // an older attempt
  const before = container.dataset.status;
  container.dataset.status = job.status;
  const f = ownFields(container);
  const running = RUNNING.has(job.status);
  f.get("status").forEach((el) => setBadge(el, STATUS_TONES, job.status));
  f.get("push").forEach((el) => setBadge(el, PUSH_TONES, job.pushStatus));
  f.get("progress").forEach((el) => { el.value = job.progress ?? 0; el.textContent = `${job.progress ?? 0}%`; });
  f.get("progress-text").forEach((el) => { el.textContent = `${job.progress ?? 0}%`; });
  f.get("progress-wrap").forEach((el) => el.classList.toggle("is-hidden", !running && !container.hasAttribute("data-tracker")));
  f.get("progress-card").forEach((el) => { el.hidden = !ACTIVE.has(job.status); });
  f.get("status-hint").forEach((el) => {
    el.textContent = job.status === "pending" ? "Waiting for PikcelAI…" : job.status === "processing" ? "Processing…" : "";
  });
  f.get("credits").forEach((el) => { el.textContent = String(job.creditsUsed ?? 0); });
  f.get("attempt").forEach((el) => { el.textContent = String(job.attempt ?? 1); });
  f.get("pikcel-id").forEach((el) => { el.textContent = job.pikcelJobId ?? "not sent yet"; });
  f.get("duration").forEach((el) => { el.textContent = duration(job.processingTimeMs); });
  for (const [field, key] of [["finished", "completedAt"], ["started", "startedAt"]]) {
    f.get(field).forEach((el) => el.replaceChildren(job[key] ? timeElement(job[key]) : "—"));
  }
  f.get("error").forEach((el) => { el.hidden = !job.errorMessage; });
  f.get("error-text").forEach((el) => { el.textContent = job.errorMessage ?? ""; });
  if (job.thumbnailUrl) {
    f.get("thumb").forEach((el) => {
      let img = $("img", el);
      if (!img) { img = document.createElement("img"); img.alt = ""; el.append(img); }
      if (img.getAttribute("src") !== job.thumbnailUrl) img.src = job.thumbnailUrl;
    });
  }
  f.get("output").forEach((img) => {
    if (job.outputImageUrl) {
      if (img.getAttribute("src") !== job.outputImageUrl) img.src = job.outputImageUrl;
      img.hidden = false;
    }
  });
  f.get("output-placeholder").forEach((el) => {
    el.hidden = Boolean(job.outputImageUrl);
    if (!job.outputImageUrl && (job.status === "failed" || job.status === "cancelled")) el.textContent = `No result: the job ${job.status}.`;
  });
  f.get("download").forEach((a) => { if (job.outputImageUrl) a.href = job.outputImageUrl; });
  for (const el of $$("[data-push-when]", container)) {
    el.hidden = !(job.status === "completed" && el.dataset.pushWhen.split(/\s+/).includes(job.pushStatus));
  }
  for (const el of f.shows) {
    const states = el.dataset.showWhen.split(/\s+/);
    let visible = states.includes(job.status);
    if (el.dataset.field === "download") visible = visible && Boolean(job.outputImageUrl);
    el.hidden = !visible;
  }
  if (before !== job.status && container.tagName === "TR") {
    container.classList.remove("is-updated");
    void container.offsetWidth; // restart the highlight animation
    container.classList.add("is-updated");
  }
  if (container.hasAttribute("data-tracker")) setupCompare();
}

const statusTitle = (msg) => {
  const d = msg.data ?? {};
  if (msg.kind === "created") return "Job created";
  if (msg.kind === "status") return d.attempt ? `Retried: attempt ${d.attempt}` : `Status: ${d.from ?? "?"} → ${d.to ?? msg.status}`;
  if (msg.kind === "dispatched") return "Sent to PikcelAI";
  if (msg.kind === "output") return "Output image stored";
  if (msg.kind === "push") return `Shopify: ${String(d.to ?? "").replaceAll("_", " ")}`;
  return capitalize(String(msg.kind).replaceAll("_", " "));
};

function appendTimeline(msg) {
  const list = $("[data-timeline]");
  if (!list || msg.kind === "progress" || $(`[data-event-id="${msg.id}"]`, list)) return;
  $$("li.muted", list).forEach((li) => li.remove());
  const li = document.createElement("li");
  li.dataset.eventId = msg.id;
  const title = document.createElement("p");
  title.className = "timeline__title";
  title.textContent = statusTitle(msg);
  const meta = document.createElement("p");
  meta.className = "timeline__meta";
  meta.append(timeElement(new Date().toISOString()));
  const extra = msg.data?.reason ?? msg.data?.error;
  if (extra) meta.append(` · ${extra}`);
  li.append(title, meta);
  list.append(li);
}

// Dashboard counters follow status changes.
const STAT_OF = { scheduled: "pending", pending: "pending", processing: "processing", completed: "completed", failed: "failed", cancelled: "cancelled" };
function bumpStat(name, delta) {
  const el = $(`[data-stat="${name}"]`);
  if (!el) return;
  const n = Number(el.textContent.replace(/[^\d.-]/g, "")) || 0;
  el.textContent = Math.max(0, n + delta).toLocaleString();
}
function updateStats(msg) {
  if (!$("[data-stat]")) return;
  const d = msg.data ?? {};
  if (msg.kind === "created") { bumpStat("total", 1); bumpStat(STAT_OF[msg.status] ?? "pending", 1); return; }
  if (msg.kind !== "status" || !d.from || !d.to || STAT_OF[d.from] === STAT_OF[d.to]) return;
  bumpStat(STAT_OF[d.from], -1);
  bumpStat(STAT_OF[d.to], 1);
  if (d.to === "completed" && msg.job?.creditsUsed) bumpStat("credits", msg.job.creditsUsed);
  const done = Number($('[data-stat="completed"]')?.textContent.replace(/[^\d]/g, "")) || 0;
  const failed = Number($('[data-stat="failed"]')?.textContent.replace(/[^\d]/g, "")) || 0;
  const rate = $('[data-stat="success-rate"]');
  if (rate && done + failed > 0) rate.textContent = `${((100 * done) / (done + failed)).toFixed(1)}%`;
}

function activeCard(job) {
  const li = document.createElement("li");
  li.className = "active-job";
  li.dataset.jobId = job.id;
  li.dataset.status = job.status;
  const thumb = document.createElement("span");
  thumb.className = "thumb thumb--md";
  thumb.dataset.field = "thumb";
  const img = document.createElement("img");
  img.alt = "";
  img.src = job.thumbnailUrl || job.inputImageUrl;
  img.referrerPolicy = "no-referrer";
  thumb.append(img);
  const body = document.createElement("div");
  body.className = "active-job__body";
  const row = document.createElement("div");
  row.className = "row row--between";
  const link = document.createElement("a");
  link.className = "cell-title";
  link.href = `/app/jobs/${encodeURIComponent(job.id)}`;
  link.textContent = job.productTitle || job.toolName || job.toolId;
  const badge = document.createElement("span");
  badge.className = "badge badge--status";
  badge.dataset.field = "status";
  badge.innerHTML = '<span class="badge__dot" aria-hidden="true"></span><span data-text></span>';
  row.append(link, badge);
  const sub = document.createElement("span");
  sub.className = "cell-sub";
  sub.textContent = job.toolName || job.toolId;
  const progress = document.createElement("div");
  progress.className = "progress";
  progress.dataset.field = "progress-wrap";
  progress.innerHTML = '<progress class="progress__bar" max="100" value="0" data-field="progress" aria-label="Progress"></progress><span class="progress__value" data-field="progress-text">0%</span>';
  body.append(row, sub, progress);
  li.append(thumb, body);
  applyToContainer(li, job);
  return li;
}

const seenNew = new Set();
function noteNewJob(msg) {
  const job = msg.job;
  const list = $("[data-active-list]");
  if (list && ACTIVE.has(job.status)) {
    list.prepend(activeCard(job));
    $("[data-active-empty]")?.remove();
    return;
  }
  const empty = $("[data-active-empty]");
  if (empty && ACTIVE.has(job.status)) {
    const ul = document.createElement("ul");
    ul.className = "active-jobs";
    ul.dataset.activeList = "";
    ul.append(activeCard(job));
    empty.replaceWith(ul);
    return;
  }
  const banner = $("[data-new-jobs-banner]");
  if (banner) {
    seenNew.add(job.id);
    banner.hidden = false;
    $("[data-new-jobs-count]", banner).textContent = String(seenNew.size);
  }
}

function applyJob(msg) {
  if (!msg.job) return;
  const containers = $$(`[data-job-id="${CSS.escape(msg.jobId)}"]`);
  containers.forEach((el) => applyToContainer(el, msg.job));
  if ($(`[data-tracker][data-job-id="${CSS.escape(msg.jobId)}"]`)) appendTimeline(msg);
  updateStats(msg);
  if (msg.kind === "created" && !containers.length) noteNewJob(msg);
}

// ---------------------------------------------------------------- the live stream

const bulkListeners = new Set();
const bulkLatest = new Map(); // operationId → newest progress seen (it may beat the POST's answer)

function startLive() {
  const url = document.body.dataset.live;
  if (!url || !("EventSource" in window)) return;
  const toggle = $("[data-live-toggle]");
  const box = toggle ? $("input", toggle) : null;
  const label = toggle ? $(".live-toggle__label", toggle) : null;
  let paused = localStorage.getItem("pikcel.livePaused") === "1";
  let connected = false;
  let lost = false; // the stream dropped; the browser reconnects with Last-Event-ID
  const held = new Map(); // jobId → newest message, while paused
  const setState = () => {
    if (!toggle) return;
    toggle.hidden = false;
    const state = paused ? "paused" : connected ? "live" : lost ? "offline" : "connecting";
    toggle.dataset.state = state;
    label.textContent = paused ? `Paused${held.size ? ` (${held.size} waiting)` : ""}` : connected ? "Live updates" : lost ? "Reconnecting…" : "Connecting…";
    toggle.title = paused ? "Turn live updates back on" : "Pause live updates";
    box.checked = !paused;
  };
  const after = Number(document.body.dataset.lastEventId || 0);
  const source = new EventSource(`${url}?lastEventId=${after}`);
  source.addEventListener("open", () => { connected = true; setState(); });
  source.addEventListener("error", () => {
    connected = source.readyState === EventSource.OPEN;
    lost = !connected;
    setState();
  });
  source.addEventListener("job", (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (paused) {
      const prev = held.get(msg.jobId);
      held.set(msg.jobId, prev && msg.kind !== "created" && prev.kind === "created" ? { ...msg, kind: "created" } : msg);
      setState();
    } else {
      applyJob(msg);
    }
  });
  source.addEventListener("bulk", (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    bulkLatest.set(msg.operationId, msg);
    bulkListeners.forEach((fn) => fn(msg));
  });
  box?.addEventListener("change", () => {
    paused = !box.checked;
    localStorage.setItem("pikcel.livePaused", paused ? "1" : "0");
    if (!paused) { held.forEach((msg) => applyJob(msg)); held.clear(); }
    setState();
  });
  window.addEventListener("pagehide", () => source.close());
  setState();
}

// ---------------------------------------------------------------- bulk selection and actions

function setupBulk() {
  const form = $("[data-bulk-form]");
  if (!form) return;
  const rows = () => $$("[data-select-row]");
  const all = $("[data-select-all-matching]");
  const page = $("[data-select-page]");
  const count = $("[data-selected-count]");
  const total = Number(form.dataset.total || 0);
  const refresh = () => {
    const checked = rows().filter((r) => r.checked);
    rows().forEach((r) => r.closest("tr")?.classList.toggle("is-selected", r.checked || all?.checked));
    if (page) { page.checked = checked.length > 0 && checked.length === rows().length; page.indeterminate = checked.length > 0 && !page.checked; }
    count.textContent = all?.checked ? `All ${plural(total, "job")} matching this filter` : checked.length ? `${plural(checked.length, "job")} selected` : "Select jobs, or all that match";
  };
  rows().forEach((r) => r.addEventListener("change", () => { if (all) all.checked = false; refresh(); }));
  page?.addEventListener("change", () => { rows().forEach((r) => { r.checked = page.checked; }); if (all) all.checked = false; refresh(); });
  all?.addEventListener("change", () => { if (all.checked) rows().forEach((r) => { r.checked = true; }); refresh(); });
  refresh();

  const dialog = $("[data-confirm-dialog]");
  const progress = $("[data-bulk-progress]");
  let watching = null;
  bulkListeners.add((msg) => { if (watching && msg.operationId === watching) showBulk({ ...msg, id: msg.operationId }); });

  function showBulk(op) {
    if (!progress) return;
    progress.hidden = false;
    const [label, done] = BULK_WORDS[op.action] ?? ["Working", "done"];
    const bar = $("[data-bulk-bar]", progress);
    const pct = op.total ? Math.round((100 * (op.processed ?? 0)) / op.total) : 100;
    bar.value = op.status === "completed" ? 100 : pct;
    $("[data-bulk-label]", progress).textContent =
      op.status === "completed"
        ? (op.total ? `Done: ${plural(op.succeeded ?? 0, "job")} ${done}${op.skipped ? `, ${op.skipped} skipped` : ""}.` : op.message ? capitalize(op.message) + "." : "Nothing to do.")
        : `${label}: ${op.processed ?? 0} of ${op.total}…`;
    $("[data-bulk-counts]", progress).textContent = op.total ? `${op.processed ?? 0} / ${op.total}` : "";
  }

  form.addEventListener("submit", async (event) => {
    const action = event.submitter?.value;
    if (!action || !BULK_WORDS[action]) return;
    event.preventDefault();
    const scopeAll = Boolean(all?.checked);
    const selected = rows().filter((r) => r.checked);
    if (!scopeAll && !selected.length) { count.textContent = "Select at least one job first."; return; }
    const n = scopeAll ? total : selected.length;
    const touched = scopeAll
      ? Number(form.dataset[`eligible${capitalize(action)}`] ?? n)
      : selected.filter((r) => BULK_ELIGIBLE[action].has(r.closest("[data-status]")?.dataset.status)).length;
    const [label, done] = BULK_WORDS[action];
    $("[data-confirm-title]", dialog).textContent = `${label} ${plural(touched, "job")}?`;
    $("[data-confirm-text]", dialog).textContent = touched === n
      ? `This will ${action} ${plural(n, "job")} ${scopeAll ? "matching the filter" : "you selected"}.`
      : `${plural(touched, "job")} of the ${n.toLocaleString()} ${scopeAll ? "matching the filter" : "selected"} will be ${done}; the others are skipped (${action === "retry" ? "only failed or cancelled jobs can be retried" : "only waiting or running jobs"}).`;
    const ok = $("[data-confirm-ok]", dialog);
    ok.textContent = `${label} ${plural(touched, "job")}`;
    ok.disabled = touched === 0;
    dialog.returnValue = "";
    dialog.showModal();
    const choice = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
    if (choice !== "confirm") return;
    const body = scopeAll ? { action, filter: JSON.parse(form.dataset.filter || "{}") } : { action, jobIds: selected.map((r) => r.value) };
    event.submitter.setAttribute("aria-busy", "true");
    try {
      const { status, data } = await postJson("/api/jobs/bulk", body);
      if (status === 404 || status === 405) return submitWithoutJs(form, action);
      if (!data.success) { flash(data.error?.message ?? "The bulk action failed.", "critical"); return; }
      watching = data.operation.id;
      const seen = bulkLatest.get(watching);
      const newer = seen && (seen.status === "completed" || (seen.processed ?? 0) > (data.operation.processed ?? 0));
      showBulk(newer ? { ...data.operation, ...seen, id: watching } : data.operation);
    } catch {
      flash("The bulk action could not be sent; check your connection and try again.", "critical");
    } finally {
      event.submitter.removeAttribute("aria-busy");
    }
  });
}

function submitWithoutJs(form, action) {
  for (const [name, value] of [["action", action], ["confirm", "1"]]) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.append(input);
  }
  form.submit();
}

// ---------------------------------------------------------------- one job's actions

function setupJobActions() {
  for (const form of $$("form[data-job-action][data-api]")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = $("button", form);
      const container = form.closest("[data-job-id]") ?? $("[data-tracker]");
      const jobId = container?.dataset.jobId;
      if (form.dataset.jobAction === "cancel" && !window.confirm("Cancel this job? PikcelAI stops working on it.")) return;
      button?.setAttribute("aria-busy", "true");
      try {
        let extra = {};
        try { extra = JSON.parse(form.dataset.apiExtra || "{}"); } catch { /* none */ }
        const { status, data } = await postJson(form.dataset.api, { jobId, ...extra });
        if (status === 404 && data.error?.code !== "NOT_FOUND") { form.submit(); return; }
        if (!data.success) { flash(data.error?.message ?? "That didn't work; try again.", "critical"); return; }
        flash(form.dataset.done || "Done.", "success");
        if (data.job) $$(`[data-job-id="${CSS.escape(data.job.id)}"]`).forEach((el) => applyToContainer(el, data.job));
      } catch {
        flash("The request could not be sent; check your connection and try again.", "critical");
      } finally {
        button?.removeAttribute("aria-busy");
      }
    });
  }
}

// ---------------------------------------------------------------- before/after slider

function setupCompare() {
  const grid = $("[data-compare]");
  if (!grid || grid.dataset.enhanced) return;
  const before = $("[data-compare-before]", grid);
  const after = $("[data-compare-after]", grid);
  if (!before || !after || after.hidden || !after.getAttribute("src")) return;
  grid.dataset.enhanced = "1";
  const slider = document.createElement("div");
  slider.className = "slider";
  const b = before.cloneNode();
  const a = after.cloneNode();
  a.removeAttribute("data-field");
  a.classList.add("slider__after");
  const range = document.createElement("input");
  range.type = "range";
  range.min = "0";
  range.max = "100";
  range.value = "50";
  range.className = "slider__range";
  range.setAttribute("aria-label", "Compare before and after: move to reveal the processed image");
  const edge = document.createElement("div");
  edge.className = "slider__edge";
  const labels = document.createElement("div");
  labels.className = "slider__labels";
  labels.innerHTML = "<span>Before</span><span>After</span>";
  slider.append(b, a, range, edge, labels);
  const move = () => { a.style.clipPath = `inset(0 0 0 ${range.value}%)`; edge.style.left = `${range.value}%`; };
  range.addEventListener("input", move);
  move();
  const toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "button button--plain";
  toggle.textContent = "Show side by side";
  toggle.addEventListener("click", () => {
    const side = slider.hidden;
    slider.hidden = !side;
    grid.hidden = side;
    toggle.textContent = side ? "Show side by side" : "Show the slider";
  });
  grid.hidden = true;
  grid.before(slider);
  grid.parentElement.querySelector(".card__header")?.append(toggle);
}

// ---------------------------------------------------------------- new job form

function setupNewJob() {
  const form = $("[data-new-job-form]");
  if (!form) return;
  const tz = $("[data-tz-offset]", form);
  if (tz) tz.value = String(new Date().getTimezoneOffset());
  const help = $("[data-tz-help]", form);
  if (help) help.textContent = `Your local time (${Intl.DateTimeFormat().resolvedOptions().timeZone ?? "browser time zone"}).`;
  const params = $("[data-parameters]", form);
  let lastDefaults = params?.value.trim();
  const estimate = () => {
    const tool = $('input[name="toolId"]:checked', form);
    const urls = ($("[data-image-urls]", form)?.value ?? "").split(/[\n,]+/).filter((u) => u.trim()).length;
    const picked = $$("[data-product-image]:checked", form).length;
    const n = urls + picked;
    const picker = $("[data-picked-count]");
    if (picker) picker.textContent = `${picked} picked`;
    const out = $("[data-estimate]");
    const detail = $("[data-estimate-detail]");
    const submit = $("[data-submit]", form);
    if (submit) submit.textContent = n > 1 ? `Create ${n} jobs` : "Create job";
    if (!tool) { out.textContent = "—"; detail.textContent = "Choose a tool to see the cost."; return; }
    const credits = Number(tool.dataset.credits || 0);
    const name = $(".option-card__title", tool.closest("label"))?.textContent ?? tool.value;
    out.textContent = (credits * Math.max(n, 1)).toLocaleString();
    detail.textContent = `${name}: ${credits} × ${Math.max(n, 1)} image${Math.max(n, 1) === 1 ? "" : "s"}.`;
  };
  form.addEventListener("input", estimate);
  form.addEventListener("change", (event) => {
    const t = event.target;
    if (t.name === "toolId" && params && (params.value.trim() === lastDefaults || params.value.trim() === "{}" || !params.value.trim())) {
      params.value = t.dataset.defaults || "{}";
      lastDefaults = params.value.trim();
    }
    estimate();
  });
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    if (button) { button.setAttribute("aria-busy", "true"); setTimeout(() => { button.disabled = true; }, 0); }
  });
  estimate();
  $("[data-form-errors]")?.focus();
  setupProductSearch(form, estimate);
}

function setupProductSearch(form, onChange) {
  const search = $("[data-product-search]");
  const grid = $("[data-product-grid]");
  const query = $("[data-product-query]");
  if (!search || !grid || !query) return;
  let cursor = null;
  const more = document.createElement("button");
  more.type = "button";
  more.className = "button";
  more.textContent = "More products";
  more.hidden = true;
  $("[data-product-more]")?.remove();
  grid.after(more);
  const load = async (append) => {
    const qs = new URLSearchParams();
    if (query.value.trim()) qs.set("query", query.value.trim());
    if (append && cursor) qs.set("cursor", cursor);
    grid.setAttribute("aria-busy", "true");
    if (!append) grid.replaceChildren(...Array.from({ length: 4 }, () => Object.assign(document.createElement("div"), { className: "skeleton image-skeleton" })));
    try {
      const response = await fetch(`/api/products?${qs}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const data = await response.json();
      if (!data.success) throw new Error(data.error?.message ?? "not loaded");
      const keep = $$("[data-product-image]:checked", grid).map((i) => i.closest("label"));
      const items = [];
      for (const p of data.products ?? []) for (const img of p.images ?? []) {
        const value = JSON.stringify({ url: img.url, imageId: img.id, productId: p.id, productTitle: p.title });
        if (keep.some((l) => $("input", l).value === value)) continue;
        const label = document.createElement("label");
        label.className = "image-option";
        const box = Object.assign(document.createElement("input"), { type: "checkbox", name: "productImage", value });
        box.dataset.productImage = "";
        const im = Object.assign(document.createElement("img"), { src: img.url, alt: img.altText || p.title, loading: "lazy" });
        im.referrerPolicy = "no-referrer";
        const title = Object.assign(document.createElement("span"), { className: "image-option__title", textContent: p.title });
        label.append(box, im, title);
        items.push(label);
      }
      if (append) grid.append(...items); else grid.replaceChildren(...keep, ...items);
      if (!grid.children.length) grid.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "No products found." }));
      cursor = data.nextCursor ?? null;
      more.hidden = !cursor;
    } catch {
      grid.replaceChildren(Object.assign(document.createElement("p"), { className: "muted", textContent: "Your products could not be loaded just now. Paste image URLs instead." }));
    } finally {
      grid.removeAttribute("aria-busy");
      onChange();
    }
  };
  search.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  query.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); load(false); } });
  more.addEventListener("click", () => load(true));
}

// ---------------------------------------------------------------- small things

function compactFilters() {
  // On a phone the list comes first: the filters fold away unless some are in use.
  const box = $("[data-filters]");
  if (box && !box.hasAttribute("data-active") && window.matchMedia("(max-width: 760px)").matches) box.open = false;
}

function localTimes() {
  for (const t of $$("time[data-local-time]")) t.textContent = localTime(t.dateTime);
}

function busyForms() {
  for (const form of $$("form[method=post]:not([data-bulk-form]):not([data-job-action]):not([data-new-job-form])")) {
    form.addEventListener("submit", (event) => event.submitter?.setAttribute("aria-busy", "true"));
  }
}

localTimes();
compactFilters();
startLive();
setupBulk();
setupJobActions();
setupCompare();
setupNewJob();
busyForms();
