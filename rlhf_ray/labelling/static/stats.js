// The stats page: the figures of `rlhf-ray label stats`, written as text.
"use strict";

function percent(value) {
  return value === null ? "-" : `${(100 * value).toFixed(1)}%`;
}

async function showStats() {
  const error = document.getElementById("error");
  try {
    const stats = await labellingApi.get("/api/stats");
    document.getElementById("summary").textContent =
      `${stats.judgements} judgements of ${stats.items} items; flag rate ${percent(stats.flag_rate)}`;
    document.getElementById("agreement").textContent = stats.agreement === null
      ? `Agreement: no response pair ordered by two labellers yet (${stats.shared_items} shared items).`
      : `Agreement: ${percent(stats.agreement)} of ${stats.compared_pairs} response pairs ordered by two ` +
        `labellers (${stats.shared_items} shared items).`;
    const rows = stats.labellers.map((labeller) => {
      const row = document.createElement("tr");
      const seconds = labeller.median_seconds === null ? "-" : labeller.median_seconds.toFixed(1);
      for (const value of [labeller.labeller, labeller.items, labeller.ranked, labeller.skipped, labeller.flagged, seconds]) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      return row;
    });
    document.getElementById("labellers").replaceChildren(...rows);
  } catch (failure) {
    error.textContent = `Could not load the stats: ${failure.message}`;
    error.hidden = false;
  }
}

showStats();
