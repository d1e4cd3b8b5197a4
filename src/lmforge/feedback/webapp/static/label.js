// Ranking helpers for the label form. The form works without this script; it only fills the rank fields.
// A good-bad batch has no rank fields: then only Ctrl+Enter and moving between score fields apply.
(() => {
  "use strict";
  const form = document.getElementById("label-form");
  if (!form) return;
  const box = document.getElementById("responses");
  const orderLine = document.getElementById("order");
  const k = Number(form.dataset.k);
  const letter = (i) => String.fromCharCode(65 + i);
  const rankInput = (i) => form.elements["rank_" + i];
  const cards = () => Array.from(box.querySelectorAll(".response"));
  let picked = [];
  const ranked = Boolean(rankInput(0));

  function showOrder() {
    if (!ranked) return;
    const ranks = [];
    for (let i = 0; i < k; i++) ranks.push(Number(rankInput(i).value) || 0);
    const counts = {};
    ranks.forEach((r) => { counts[r] = (counts[r] || 0) + 1; });
    for (let i = 0; i < k; i++) rankInput(i).classList.toggle("dup", ranks[i] > 0 && counts[ranks[i]] > 1);
    const complete = ranks.every((r) => r >= 1 && r <= k) && Object.keys(counts).length === k;
    const order = [...Array(k).keys()].filter((i) => ranks[i] > 0).sort((a, b) => ranks[a] - ranks[b]);
    orderLine.textContent = complete ? "Order: " + order.map(letter).join(" > ")
      : "Order so far: " + (order.map(letter).join(" > ") || "(none)") + " - every response needs a different rank";
  }

  function sortCardsByRank() {
    cards().sort((a, b) => Number(rankInput(a.dataset.index).value) - Number(rankInput(b.dataset.index).value))
      .forEach((c) => box.appendChild(c));
  }

  function applyPicked() {
    for (let i = 0; i < k; i++) rankInput(i).value = "";
    picked.forEach((idx, pos) => { rankInput(idx).value = pos + 1; });
    if (picked.length === k) sortCardsByRank();
    showOrder();
  }

  // drag and drop by the handle
  let dragging = null;
  box.addEventListener("mousedown", (e) => {
    const handle = ranked && e.target.closest(".handle");
    if (handle) handle.closest(".response").draggable = true;
  });
  box.addEventListener("dragstart", (e) => {
    dragging = e.target.closest(".response");
    if (!dragging) return;
    dragging.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", dragging.dataset.index);
  });
  box.addEventListener("dragover", (e) => {
    if (!dragging) return;
    e.preventDefault();
    const over = e.target.closest(".response");
    if (!over || over === dragging) return;
    const r = over.getBoundingClientRect();
    box.insertBefore(dragging, e.clientY > r.top + r.height / 2 ? over.nextSibling : over);
  });
  box.addEventListener("drop", (e) => e.preventDefault());
  box.addEventListener("dragend", () => {
    if (!dragging) return;
    dragging.classList.remove("dragging");
    dragging.draggable = false;
    dragging = null;
    cards().forEach((c, pos) => { rankInput(c.dataset.index).value = pos + 1; });
    picked = cards().map((c) => Number(c.dataset.index));
    showOrder();
  });

  // keyboard
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      form.requestSubmit();
      return;
    }
    if (e.target.matches("input, textarea, select, button") || e.altKey || e.ctrlKey || e.metaKey) return;
    const key = e.key.length === 1 ? e.key.toUpperCase() : e.key;
    if (!ranked) return;
    if (key.length === 1 && key >= "A" && key <= letter(k - 1)) {
      const i = key.charCodeAt(0) - 65;
      if (!picked.includes(i)) picked.push(i);
      if (picked.length === k - 1) picked.push([...Array(k).keys()].find((j) => !picked.includes(j)));
      applyPicked();
      e.preventDefault();
    } else if (key === "Backspace") {
      picked = picked.slice(0, Math.max(0, Math.min(picked.length, k - 1) - 1));
      applyPicked();
      e.preventDefault();
    } else if (key === "Escape") {
      picked = [];
      applyPicked();
    }
  });

  // typing a valid digit moves on to the next field of the same kind (scores run on across responses)
  const groups = { score: Array.from(form.querySelectorAll("input.score")),
                   rank: Array.from(form.querySelectorAll("input.rank")) };
  form.addEventListener("focusin", (e) => {
    if (e.target.matches("input[type=number]")) e.target.select();
  });
  form.addEventListener("input", (e) => {
    const t = e.target;
    const kind = t.classList.contains("score") ? "score" : t.classList.contains("rank") ? "rank" : null;
    const done = kind === "score" ? /^[1-7]$/.test(t.value)
      : kind === "rank" && k < 10 && /^[1-9]$/.test(t.value) && Number(t.value) <= k;
    if (done) {
      const next = groups[kind][groups[kind].indexOf(t) + 1];
      if (next) next.focus();
    }
    if (kind === "rank") picked = [];
    showOrder();
  });
  showOrder();
})();
