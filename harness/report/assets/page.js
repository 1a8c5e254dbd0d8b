// The leaderboard page's behaviour: sortable tables, column groups, interval bars, charts, the error browser.
// Every string from the data reaches the document through textContent (or Plotly text escaped by pt()).
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("page-data").textContent);

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  // Plotly draws its strings as pseudo-HTML: entities keep a label a label.
  function pt(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function fmt(v, d) { return v === null || v === undefined ? "n/a" : Number(v).toFixed(d); }

  // ----- tables: sort by any column, interval bars ------------------------------------------------------------
  function sortTable(table, col, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = !th.classList.contains("sorted-asc");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(asc ? "sorted-asc" : "sorted-desc");
    var keyed = rows.map(function (r, i) {
      var cell = r.cells[col];
      var v = cell && cell.hasAttribute("data-v") ? parseFloat(cell.getAttribute("data-v")) : null;
      return { row: r, v: v, t: cell ? cell.textContent : "", i: i };
    });
    keyed.sort(function (a, b) {
      if (a.v === null && b.v !== null) return 1;   // n/a last either way
      if (b.v === null && a.v !== null) return -1;
      var d = a.v !== null ? a.v - b.v : a.t.localeCompare(b.t);
      return (asc ? d : -d) || a.i - b.i;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k.row); });
    body.appendChild(frag);
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.data"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortTable(table, col, th); });
    });
    var bars = {};
    Array.prototype.forEach.call(table.querySelectorAll("span.ci"), function (s) {
      var col = s.parentNode.cellIndex;
      (bars[col] = bars[col] || []).push(s);
    });
    Object.keys(bars).forEach(function (col) {
      var spans = bars[col];
      var lo = Math.min.apply(null, spans.map(function (s) { return +s.getAttribute("data-lo"); }));
      var hi = Math.max.apply(null, spans.map(function (s) { return +s.getAttribute("data-hi"); }));
      var span = hi - lo || 1;
      spans.forEach(function (s) {
        var a = (+s.getAttribute("data-lo") - lo) / span, b = (+s.getAttribute("data-hi") - lo) / span;
        var x = (+s.getAttribute("data-x") - lo) / span;
        var bar = el("i"); bar.style.left = (100 * a) + "%"; bar.style.width = Math.max(1, 100 * (b - a)) + "%";
        var dot = el("b"); dot.style.left = "calc(" + (100 * x) + "% - 1px)";
        s.appendChild(bar); s.appendChild(dot);
        s.title = "interval drawn on the column's scale: " + lo + " to " + hi;
      });
    });
  });

  // ----- column groups -----------------------------------------------------------------------------------------
  var groups = [];
  Array.prototype.forEach.call(document.querySelectorAll("[data-group]"), function (node) {
    var g = node.getAttribute("data-group");
    if (groups.indexOf(g) < 0) groups.push(g);
  });
  var bar = document.getElementById("groups");
  if (groups.length) bar.appendChild(el("span", {}, "Columns: "));
  groups.forEach(function (g) {
    var id = "group-" + g.replace(/[^a-z0-9]+/gi, "-");
    var box = el("input", { type: "checkbox", id: id }); box.checked = true;
    box.addEventListener("change", function () {
      Array.prototype.forEach.call(document.querySelectorAll("[data-group]"), function (node) {
        if (node.getAttribute("data-group") === g) node.classList.toggle("hidden-group", !box.checked);
      });
    });
    var label = el("label", { "for": id }); label.appendChild(box); label.appendChild(document.createTextNode(" " + g));
    bar.appendChild(label);
  });
  if (document.querySelector("tr.mark-best, tr.mark-tied")) {
    bar.appendChild(el("span", { "class": "legend" },
      "Green rows: the best model, and those the paired test cannot separate from it (tied with the best)."));
  }

  // ----- charts ------------------------------------------------------------------------------------------------
  var CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };
  function pareto(points, lower) {
    return points.filter(function (p) {
      return !points.some(function (q) {
        var better = lower ? q.x <= p.x : q.x >= p.x;
        var strict = q.y > p.y || (lower ? q.x < p.x : q.x > p.x);
        return q !== p && q.y >= p.y && better && strict;
      });
    }).sort(function (a, b) { return a.x - b.x; });
  }
  function scatter(c) {
    var pts = c.points;
    var front = pareto(pts, c.lower_is_better);
    var hover = pts.map(function (p) {
      var k = p.costs || {};
      return "<b>" + pt(p.name) + "</b><br>macro-F1 " + fmt(p.y, 4) +
        (p.low !== null && p.low !== undefined ? " [" + fmt(p.low, 4) + ", " + fmt(p.high, 4) + "]" : "") +
        "<br>latency p50 " + fmt(k.latency, 2) + " ms<br>throughput " + fmt(k.throughput, 1) + " samples/s" +
        "<br>training " + fmt(k.train, 1) + " s<br>memory " + fmt(k.memory, 0) + " MiB" +
        (front.indexOf(p) >= 0 ? "<br>on the Pareto front" : "");
    });
    var traces = [{
      type: "scatter", mode: "markers+text", name: "models", x: pts.map(function (p) { return p.x; }),
      y: pts.map(function (p) { return p.y; }), text: pts.map(function (p) { return pt(p.name); }),
      textposition: "top center", hovertext: hover, hoverinfo: "text",
      marker: { size: 10, color: pts.map(function (p) { return front.indexOf(p) >= 0 ? "#c0392b" : "#5b7fc7"; }) },
      error_y: { type: "data", symmetric: false,
        array: pts.map(function (p) { return p.high === null || p.high === undefined ? 0 : p.high - p.y; }),
        arrayminus: pts.map(function (p) { return p.low === null || p.low === undefined ? 0 : p.y - p.low; }) }
    }, {
      type: "scatter", mode: "lines", name: "Pareto front", hoverinfo: "skip",
      x: front.map(function (p) { return p.x; }), y: front.map(function (p) { return p.y; }),
      line: { color: "#c0392b", dash: "dot", shape: c.lower_is_better ? "hv" : "vh" }
    }];
    // Deployment variants: diamonds, each linked to its model's point by a dotted segment (null breaks the line).
    var vs = (c.variants || []).filter(function (v) { return pts.some(function (p) { return p.name === v.parent; }); });
    if (vs.length) {
      var lx = [], ly = [];
      vs.forEach(function (v) {
        var m = pts.filter(function (p) { return p.name === v.parent; })[0];
        lx.push(m.x, v.x, null); ly.push(m.y, v.y, null);
      });
      traces.push({ type: "scatter", mode: "lines", name: "variant of", hoverinfo: "skip", showlegend: false,
        x: lx, y: ly, line: { color: "#888", dash: "dot", width: 1 } });
      traces.push({ type: "scatter", mode: "markers+text", name: "deployment variants",
        x: vs.map(function (v) { return v.x; }), y: vs.map(function (v) { return v.y; }),
        text: vs.map(function (v) { return pt(v.variant); }), textposition: "bottom center", hoverinfo: "text",
        hovertext: vs.map(function (v) {
          return "<b>" + pt(v.name) + "</b><br>macro-F1 " + fmt(v.y, 4) + "<br>accuracy " + fmt(v.accuracy, 4) +
            (v.p_value !== null && v.p_value !== undefined ? "<br>McNemar p vs its PyTorch model " + fmt(v.p_value, 3) : "");
        }),
        marker: { size: 9, symbol: "diamond", color: "#8e6cc7" } });
    }
    return { data: traces, layout: { title: { text: pt(c.title), font: { size: 13 } }, showlegend: true,
      xaxis: { title: { text: pt(c.x_label) }, type: c.log_x ? "log" : "linear" },
      yaxis: { title: { text: pt(c.y_label) } }, margin: { t: 40, r: 10, b: 50, l: 60 },
      legend: { orientation: "h", y: -0.25 } } };
  }
  function heatmap(c) {
    var d = c.digits === undefined ? 3 : c.digits;
    var text = c.z.map(function (r) { return r.map(function (v) { return v === null ? "" : fmt(v, d); }); });
    var trace = { type: "heatmap", x: c.x.map(pt), y: c.y.map(pt), z: c.z, text: text, texttemplate: "%{text}",
      colorscale: "Blues", reversescale: true, hovertemplate: "%{y} / %{x}: %{text}<extra></extra>" };
    if (c.zmin !== undefined) { trace.zmin = c.zmin; trace.zmax = c.zmax; }
    return { data: [trace], layout: { title: { text: pt(c.title), font: { size: 13 } },
      xaxis: { type: "category" }, yaxis: { type: "category", autorange: c.reverse_y ? "reversed" : true, automargin: true },
      margin: { t: 40, r: 10, b: 60, l: 90 } } };
  }
  // Plotly's own default colours (matplotlib's tab10), named so a series and its band share one.
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf"];
  function rgba(hex, alpha) {
    var v = parseInt(hex.slice(1), 16);
    return "rgba(" + (v >> 16) + "," + ((v >> 8) & 255) + "," + (v & 255) + "," + alpha + ")";
  }
  function lines(c) {
    var traces = [];
    c.series.forEach(function (s, k) {
      var color = COLORS[k % COLORS.length];
      if (s.low && s.high) {
        // A band (expected validation curves: ± one std): its upper edge, then its lower edge filled up to it.
        traces.push({ type: "scatter", mode: "lines", x: s.x, y: s.high, line: { width: 0, color: color },
          showlegend: false, hoverinfo: "skip" });
        traces.push({ type: "scatter", mode: "lines", x: s.x, y: s.low, line: { width: 0, color: color },
          fill: "tonexty", fillcolor: rgba(color, 0.15), showlegend: false, hoverinfo: "skip" });
      }
      var hover = c.diagonal ? ": confidence %{x:.3f}, accuracy %{y:.3f}" : ": n = %{x}, %{y:.4f}";
      traces.push({ type: "scatter", mode: "lines+markers", name: pt(s.name), x: s.x, y: s.y, line: { color: color },
        hovertemplate: pt(s.name) + hover + "<extra></extra>" });
    });
    if (c.diagonal) traces.push({ type: "scatter", mode: "lines", name: "perfect calibration", x: [0, 1], y: [0, 1],
      line: { color: "#999", dash: "dash" }, hoverinfo: "skip" });
    var x = { title: { text: pt(c.x_label) } }, y = { title: { text: pt(c.y_label) } };
    if (c.diagonal) { x.range = [0, 1]; y.range = [0, 1.02]; } else { x.dtick = 1; }
    // "normal": the legend lists the models in the table's order (a filled trace would reverse it).
    return { data: traces, layout: { title: { text: pt(c.title), font: { size: 13 } }, xaxis: x, yaxis: y,
      legend: { traceorder: "normal" }, margin: { t: 40, r: 10, b: 50, l: 60 } } };
  }
  var KINDS = { scatter: scatter, heatmap: heatmap, lines: lines };
  function plotly() {
    if (!window.Plotly) {
      var code = document.getElementById("plotly-js");
      var run = document.createElement("script");
      run.textContent = code.textContent;  // an inline script runs as it is inserted
      document.head.appendChild(run);
    }
    return window.Plotly;
  }
  function draw(div) {
    var c = DATA.charts[+div.getAttribute("data-chart")];
    var fig = KINDS[c.kind](c);
    plotly().react(div, fig.data, fig.layout, CONFIG);
    div.setAttribute("data-drawn", "1");
  }
  // Charts are drawn when they come near the screen, so a page of many opens at once.
  var charts = document.querySelectorAll("div[data-chart]");
  var seen = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { seen.unobserve(e.target); draw(e.target); } });
  }, { rootMargin: "600px" }) : null;
  Array.prototype.forEach.call(charts, function (div) { if (seen) seen.observe(div); else draw(div); });
  Array.prototype.forEach.call(document.querySelectorAll("select.pick"), function (pick) {
    pick.addEventListener("change", function () {
      var div = pick.parentNode.parentNode.querySelector("div[data-chart]");
      div.setAttribute("data-chart", pick.value);
      draw(div);
    });
  });
  window.drawAllCharts = function () { Array.prototype.forEach.call(charts, function (div) { if (!div.getAttribute("data-drawn")) draw(div); }); };

  // ----- the error browser -------------------------------------------------------------------------------------
  var B = DATA.browser;
  var root = document.getElementById("browser");
  if (!B || !root) return;
  var SHOW = 50;
  function select(id, label, options) {
    var wrap = el("label", {}, label + " ");
    var s = el("select", { id: id });
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0] }, o[1])); });
    wrap.appendChild(s);
    controls.appendChild(wrap);
    s.addEventListener("change", update);
    return s;
  }
  function input(id, label, attrs) {
    var wrap = el("label", {}, label + " ");
    var i = el("input", Object.assign({ id: id }, attrs));
    wrap.appendChild(i);
    controls.appendChild(wrap);
    i.addEventListener("input", update);
    return i;
  }
  var controls = el("div", { "class": "controls" });
  root.appendChild(el("p", { "class": "caption" },
    "Each test example with its true label and every model's first-seed prediction and confidence. " +
    (B.ids.length < B.total ? "Only the first " + B.ids.length + " of " + B.total + " examples are embedded; counts are of those. " : "") +
    (B.has_texts ? "Texts are cut to " + B.max_text + " characters." : "The store holds no eval_texts.csv: texts are missing.")));
  root.appendChild(controls);
  var classes = B.labels.map(function (l, k) { return [String(k), l]; });
  var models = B.models.map(function (m, k) { return [String(k), m]; });
  var fTrue = select("eb-true", "true class", [["", "any"]].concat(classes));
  var fModel = select("eb-model", "model", models);
  var fPred = select("eb-pred", "its prediction", [["", "any"], ["right", "right"], ["wrong", "wrong"]].concat(classes));
  var fA = select("eb-a", "right:", [["", "-"]].concat(models));
  var fB = select("eb-b", "and wrong:", [["", "-"]].concat(models));
  var fMin = input("eb-cmin", "its confidence from", { type: "number", min: "0", max: "1", step: "0.05", value: "0" });
  var fMax = input("eb-cmax", "to", { type: "number", min: "0", max: "1", step: "0.05", value: "1" });
  var fText = input("eb-search", "text contains", { type: "search" });
  var count = el("p", { "class": "count", id: "eb-count" });
  root.appendChild(count);
  var wrapTable = el("div", { "class": "scroll" });
  var table = el("table", { "class": "data", id: "eb-table" });
  var head = el("tr");
  ["id", "true"].concat(B.models.map(function (m) { return m; })).concat(["text"]).forEach(function (h) {
    head.appendChild(el("th", {}, h));
  });
  var thead = el("thead"); thead.appendChild(head); table.appendChild(thead);
  var tbody = el("tbody"); table.appendChild(tbody);
  wrapTable.appendChild(table); root.appendChild(wrapTable);

  function matches(i) {
    var y = B.truth[i];
    if (fTrue.value !== "" && y !== +fTrue.value) return false;
    var m = +fModel.value, p = B.predicted[m][i], c = B.confidence[m][i];
    if (fPred.value === "right" && p !== y) return false;
    if (fPred.value === "wrong" && p === y) return false;
    if (fPred.value !== "" && fPred.value !== "right" && fPred.value !== "wrong" && p !== +fPred.value) return false;
    var lo = parseFloat(fMin.value), hi = parseFloat(fMax.value);
    if (!isNaN(lo) && (c === null || c < lo)) return false;
    if (!isNaN(hi) && (c === null || c > hi)) return false;
    if (fA.value !== "" && B.predicted[+fA.value][i] !== y) return false;
    if (fB.value !== "" && B.predicted[+fB.value][i] === y) return false;
    var q = fText.value.trim().toLowerCase();
    if (q && (B.texts[i] === null || B.texts[i].toLowerCase().indexOf(q) < 0)) return false;
    return true;
  }
  function update() {
    var hits = [];
    for (var i = 0; i < B.ids.length; i++) if (matches(i)) hits.push(i);
    count.textContent = hits.length + " of " + B.ids.length + " examples match" +
      (hits.length > SHOW ? " (the first " + SHOW + " shown)" : "");
    count.setAttribute("data-count", String(hits.length));
    var frag = document.createDocumentFragment();
    hits.slice(0, SHOW).forEach(function (i) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, B.ids[i]));
      tr.appendChild(el("td", {}, B.labels[B.truth[i]]));
      B.models.forEach(function (m, k) {
        var p = B.predicted[k][i];
        tr.appendChild(el("td", { "class": p === B.truth[i] ? "right-pred" : "wrong" },
          (p < 0 ? "n/a" : B.labels[p]) + " (" + fmt(B.confidence[k][i], 2) + ")"));
      });
      tr.appendChild(el("td", { "class": "text" }, B.texts[i] === null ? "(text not in the store)" : B.texts[i]));
      frag.appendChild(tr);
    });
    tbody.textContent = "";
    tbody.appendChild(frag);
  }
  update();
})();
