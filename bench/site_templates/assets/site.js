// arbench site: sortable leaderboard tables and comparability-group tabs (no network).
"use strict";

function cellValue(row, index, type) {
  const text = row.cells[index].dataset.value || "";
  if (type !== "number") return text.toLowerCase();
  const value = parseFloat(text);
  return Number.isNaN(value) ? null : value;
}

function sortTable(table, index) {
  const header = table.tHead.rows[0].cells[index];
  const type = header.dataset.type;
  const descending = header.getAttribute("aria-sort") === "ascending";
  for (const cell of table.tHead.rows[0].cells) cell.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, type);
    const y = cellValue(b, index, type);
    if (x === y) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    return (x < y ? -1 : 1) * (descending ? -1 : 1);
  });
  rows.forEach((row) => body.appendChild(row));
}

function selectTab(button) {
  for (const tab of document.querySelectorAll(".tab")) {
    const selected = tab === button;
    tab.setAttribute("aria-selected", selected ? "true" : "false");
    document.getElementById(tab.dataset.tab).hidden = !selected;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.leaderboard")) {
    Array.from(table.tHead.rows[0].cells).forEach((cell, index) => {
      cell.addEventListener("click", () => sortTable(table, index));
    });
  }
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => selectTab(tab));
  }
});
