// The page's only script: sort a table by a column, open a row's cells, show an image large.
(function () {
  "use strict";

  // Each table row sits in its own <tbody> with the details row it opens, so a sort moves both.
  function sortKey(group, col) {
    var cell = group.rows[0] && group.rows[0].cells[col];
    return cell ? cell.getAttribute("data-sort") || "" : "";
  }

  function sortTable(table, th) {
    var col = Number(th.getAttribute("data-col"));
    var numeric = th.getAttribute("data-numeric") === "true";
    var first = numeric ? "descending" : "ascending";  // numbers: best first
    var current = th.getAttribute("aria-sort");
    var dir = current === first ? (first === "ascending" ? "descending" : "ascending") : first;
    var sign = dir === "ascending" ? 1 : -1;
    var groups = Array.prototype.slice.call(table.tBodies);
    var keyed = groups.map(function (g, i) { return { g: g, k: sortKey(g, col), i: i }; });
    keyed.sort(function (a, b) {
      if (a.k === "" || b.k === "") {  // missing values last, whatever the direction
        return a.k === b.k ? a.i - b.i : (a.k === "" ? 1 : -1);
      }
      var c = numeric ? parseFloat(a.k) - parseFloat(b.k) : a.k.localeCompare(b.k);
      return c !== 0 ? sign * c : a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (x) { frag.appendChild(x.g); });
    table.appendChild(frag);
    table.querySelectorAll("thead th[aria-sort]").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir);
  }

  var box = document.getElementById("lightbox");
  var boxImg = box.querySelector("img");
  var boxCap = box.querySelector("figcaption");

  function openImage(img) {
    boxImg.src = img.getAttribute("src");
    boxImg.alt = img.alt;
    boxCap.textContent = img.getAttribute("data-caption") || img.alt;
    var grid = img.closest("table.gallery-grid");
    box.classList.toggle("px", !!(grid && grid.classList.contains("px")));
    box.classList.toggle("plot", !grid);
    box.hidden = false;
  }

  function closeImage() {
    box.hidden = true;
    boxImg.removeAttribute("src");
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    var sorter = target.closest("button.sort");
    if (sorter) {
      sortTable(sorter.closest("table"), sorter.closest("th"));
      return;
    }
    var toggle = target.closest("button.details-toggle");
    if (toggle) {
      var row = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      row.hidden = !open;
      return;
    }
    if (!box.hidden) {
      closeImage();
      return;
    }
    var img = target.closest("img.zoom");
    if (img) {
      openImage(img);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !box.hidden) {
      closeImage();
    }
  });
})();
