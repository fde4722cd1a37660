/* Sorting and filtering for the tables inside `.resfam-sortable` (the model overview).
   Written for this site, with no dependencies, so the site works offline. */
(function () {
  "use strict";

  // A cell's sort key: a number when the cell holds one ("25.58", "82.31 %"), else its text.
  // Empty cells ("—") sort last in either direction.
  function sortKey(cell) {
    var text = cell ? cell.textContent.trim() : "";
    if (text === "" || text === "—") return null;
    var number = text.replace(/[,\s%]/g, "");
    return /^-?\d+(\.\d+)?$/.test(number) ? parseFloat(number) : text.toLowerCase();
  }

  function compare(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }

  function sortBy(table, column, header) {
    var body = table.tBodies[0];
    var descending = header.getAttribute("aria-sort") === "ascending";
    var rows = Array.prototype.slice.call(body.rows).map(function (row, index) {
      return { row: row, key: sortKey(row.cells[column]), index: index };
    });
    rows.sort(function (x, y) {
      if (x.key === null || y.key === null) {
        return (x.key === null) - (y.key === null) || x.index - y.index;
      }
      return (descending ? -1 : 1) * compare(x.key, y.key) || x.index - y.index;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  function makeSortable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      var button = document.createElement("button");
      button.type = "button";
      button.title = "Sort by " + header.textContent.trim();
      while (header.firstChild) button.appendChild(header.firstChild);
      header.appendChild(button);
      button.addEventListener("click", function () { sortBy(table, column, header); });
    });
  }

  // A row stays visible when its text contains every word typed in the box.
  function addFilter(container, table) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var bar = document.createElement("div");
    bar.className = "resfam-filter";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter models, e.g. resnest 256";
    input.setAttribute("aria-label", "Filter the table");
    var count = document.createElement("output");
    bar.appendChild(input);
    bar.appendChild(count);
    container.insertBefore(bar, container.firstChild);

    function update() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      count.textContent = shown + " of " + rows.length + " models";
    }
    input.addEventListener("input", update);
    update();
  }

  function setUp() {
    document.querySelectorAll(".resfam-sortable").forEach(function (container) {
      if (container.dataset.resfamReady) return;
      var table = container.querySelector("table");
      if (!table || !table.tHead || !table.tBodies.length) return;
      container.dataset.resfamReady = "1";
      makeSortable(table);
      addFilter(container, table);
    });
  }

  // mkdocs-material's instant navigation announces each new page on document$; without it,
  // the page is ready once the DOM is.
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(setUp);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
