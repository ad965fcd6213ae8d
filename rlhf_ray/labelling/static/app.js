// The ranking page. Model output is only ever written with textContent: it is shown as text, never
// parsed as markup. A judgement is sent once, and the page moves on only when the server says it is kept.
"use strict";

const NAME_KEY = "rlhf_ray.labeller";
const $ = (id) => document.getElementById(id);

const page = {
  item: null,      // {index, digest, prompt, responses}
  tiers: [],       // the ranking so far: tiers of response indices, best first
  tieNext: false,  // the next pick joins the last tier
  shownAt: 0,      // when the item appeared (performance.now())
  busy: false,     // a request is under way: input waits
};

function labeller() {
  return localStorage.getItem(NAME_KEY);
}

function placed() {
  return page.tiers.flat();
}

function complete() {
  return page.item !== null && placed().length === page.item.responses.length;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showProgress(progress) {
  $("progress").textContent =
    `${progress.done} / ${progress.target} items done · you: ${progress.yours} · labeller: ${labeller()}`;
}

function render(next, startedAt) {
  showProgress(next.progress);
  page.item = next.item;
  page.tiers = [];
  page.tieNext = false;
  $("finished").hidden = page.item !== null;
  $("labelling").hidden = page.item === null;
  if (page.item === null) return;
  $("prompt").textContent = page.item.prompt;
  const count = page.item.responses.length;
  $("instructions").textContent = count === 2
    ? "Click the better response, or press 1 or 2."
    : `Click the responses from best to worst, or press their numbers 1-${count}; = ties the next pick with the ` +
      "previous one, Backspace takes a pick back, Enter submits. S skips, U flags unsafe, N flags nonsense.";
  $("tie").hidden = $("undo").hidden = $("submit").hidden = count === 2;
  const cards = page.item.responses.map((text, index) => {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card";
    card.dataset.index = String(index);
    const head = document.createElement("div");
    head.className = "head";
    const name = document.createElement("span");
    name.textContent = `Response ${index + 1}`;
    const rank = document.createElement("span");
    rank.className = "rank";
    head.append(name, rank);
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    card.append(head, body);
    card.addEventListener("click", () => pick(index));
    return card;
  });
  $("responses").replaceChildren(...cards);
  updateRanking();
  page.shownAt = performance.now();
  if (startedAt !== undefined) document.body.dataset.latencyMs = (page.shownAt - startedAt).toFixed(1);
  document.body.dataset.item = String(page.item.index);
}

function updateRanking() {
  const rankOf = new Map();
  page.tiers.forEach((tier, position) => tier.forEach((index) => rankOf.set(index, position + 1)));
  for (const card of $("responses").children) {
    const rank = rankOf.get(Number(card.dataset.index));
    card.classList.toggle("placed", rank !== undefined);
    card.querySelector(".rank").textContent = rank === undefined ? "" : `#${rank}`;
  }
  $("submit").disabled = !complete();
  $("tie").classList.toggle("on", page.tieNext);
}

function pick(index) {
  if (page.busy || page.item === null || placed().includes(index)) return;
  if (page.item.responses.length === 2) {
    send({ ranking: [[index], [1 - index]] });
    return;
  }
  if (page.tieNext && page.tiers.length > 0) page.tiers[page.tiers.length - 1].push(index);
  else page.tiers.push([index]);
  page.tieNext = false;
  updateRanking();
}

function tie() {
  if (page.tiers.length > 0 && !complete()) page.tieNext = !page.tieNext;
  updateRanking();
}

function undo() {
  if (page.tieNext) page.tieNext = false;
  else if (page.tiers.length > 0) {
    page.tiers[page.tiers.length - 1].pop();
    if (page.tiers[page.tiers.length - 1].length === 0) page.tiers.pop();
  }
  updateRanking();
}

async function send({ ranking = null, flag = null }) {
  if (page.busy || page.item === null) return;
  page.busy = true;
  const startedAt = performance.now();
  const body = {
    item: page.item.index,
    digest: page.item.digest,
    labeller: labeller(),
    ranking,
    flag,
    seconds: (startedAt - page.shownAt) / 1000,
  };
  try {
    render(await labellingApi.post("/api/judgements", body), startedAt);
    showError("");
  } catch (error) {
    if (error.status === 409) await loadItem();  // the item changed under the page: show it afresh
    else showError(`Not saved, try again: ${error.message}`);
  } finally {
    page.busy = false;
  }
}

async function loadItem() {
  try {
    render(await labellingApi.get(`/api/item?labeller=${encodeURIComponent(labeller())}`));
    showError("");
  } catch (error) {
    showError(`Could not load an item: ${error.message}`);
  }
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement || page.item === null || event.ctrlKey || event.metaKey || event.altKey) {
    return;
  }
  const key = event.key.toLowerCase();
  const number = Number.parseInt(key, 10);
  if (number >= 1 && number <= page.item.responses.length) pick(number - 1);
  else if (key === "=") tie();
  else if (key === "backspace") undo();
  else if (key === "enter" && complete()) send({ ranking: page.tiers });
  else if (key === "s") send({});
  else if (key === "u") send({ flag: "unsafe" });
  else if (key === "n") send({ flag: "nonsense" });
  else return;
  event.preventDefault();
}

function askName() {
  $("labelling").hidden = true;
  $("name-form").hidden = false;
  $("name-input").value = labeller() || "";
  $("name-input").focus();
}

function start() {
  $("name-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("name-input").value.trim();
    if (!name) return;
    localStorage.setItem(NAME_KEY, name);
    $("name-form").hidden = true;
    loadItem();
  });
  $("change-name").addEventListener("click", (event) => {
    event.preventDefault();
    askName();
  });
  $("tie").addEventListener("click", tie);
  $("undo").addEventListener("click", undo);
  $("submit").addEventListener("click", () => complete() && send({ ranking: page.tiers }));
  $("skip").addEventListener("click", () => send({}));
  $("flag-unsafe").addEventListener("click", () => send({ flag: "unsafe" }));
  $("flag-nonsense").addEventListener("click", () => send({ flag: "nonsense" }));
  document.addEventListener("keydown", onKey);
  if (labeller()) loadItem();
  else askName();
}

start();
