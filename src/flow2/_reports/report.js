// flow2's HTML report: draws the timeline, the task tree and the task details
// from the JSON in #flow2-data. No library, no request: everything is here.
"use strict";
(function () {
  var began = performance.now();
  var selected = -1;
  var data = JSON.parse(document.getElementById("flow2-data").textContent);
  var tasks = data.tasks;
  // Fields of each task's list (see flow2/_reports/_html.py, _data).
  var NAME = 0, PARENT = 1, GROUP = 2, STATUS = 3, START = 4, END = 5, LANE = 6, DEPTH = 7,
    ATTEMPTS = 8, ERROR = 9, OUTPUT = 10, REASON = 11, KEY = 12, STARTED = 13, QUEUED = 14,
    DESCRIPTION = 15;
  var MARKS = { succeeded: "✓", partial: "!", failed: "✗", skipped: "-", cancelled: "⊘",
    reused: "↺", cached: "↺", running: "…", retrying: "↻", pending: "·" };
  var SVG = "http://www.w3.org/2000/svg";
  var span = Math.max(1, data.run.span);
  var chart = document.getElementById("chart");
  var bars = document.getElementById("bars");
  var axis = document.getElementById("axis");
  var tip = document.getElementById("tip");
  var zoomLabel = document.getElementById("zoom-level");

  // Rows: each lane is as tall as the slices nested on it.
  var laneTop = [], rowCount = 0;
  data.lanes.forEach(function (rows) { laneTop.push(rowCount); rowCount += rows; });
  var rowHeight = Math.max(3, Math.min(20, Math.floor(16000 / Math.max(1, rowCount))));
  var barHeight = rowHeight > 6 ? rowHeight - 3 : Math.max(2, rowHeight - 1);

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 1) return seconds.toFixed(3) + "s";
    if (seconds < 60) return seconds.toFixed(1) + "s";
    var minutes = Math.floor(seconds / 60), rest = Math.floor(seconds % 60);
    if (seconds < 3600) return minutes + "m" + (rest < 10 ? "0" : "") + rest + "s";
    var hours = Math.floor(seconds / 3600), left = Math.floor((seconds % 3600) / 60);
    return hours + "h" + (left < 10 ? "0" : "") + left + "m";
  }
  function formatOffset(micro) {
    var seconds = micro / 1e6;
    if (span < 2e6) return (micro / 1000).toFixed(micro < 10000 ? 1 : 0) + "ms";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + "s";
    return formatSeconds(seconds);
  }
  function clock(micro) {
    return new Date(data.run.start * 1000 + micro / 1000).toISOString().replace("T", " ").replace("Z", " UTC");
  }
  function describe(errorIndex) {
    var error = data.errors[errorIndex];
    return error[1] ? error[0] + ": " + error[1] : error[0];
  }
  function pathOf(index) {
    var names = [];
    for (var at = index; at >= 0; at = tasks[at][PARENT]) names.push(tasks[at][NAME]);
    return names.reverse();
  }
  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    for (var name in attributes) node.setAttribute(name, attributes[name]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One <rect class="bar"> per task, and one <path> per retried task for
  // the attempts that failed and ran again. Each drawing writes the layer as
  // one string: far quicker than 50,000 setAttribute calls.
  var grid = document.createElementNS(SVG, "g");
  var barLayer = document.createElementNS(SVG, "g");
  var retryLayer = document.createElementNS(SVG, "g");
  // The time a task's work waited for a process or Dask worker, drawn
  // over the start of its bar: the rest of the bar is its work.
  var queueLayer = document.createElementNS(SVG, "g");
  var labelLayer = document.createElementNS(SVG, "g");
  bars.appendChild(grid); bars.appendChild(barLayer); bars.appendChild(retryLayer); bars.appendChild(queueLayer); bars.appendChild(labelLayer);
  var rects = barLayer.children;
  var queuePath = document.createElementNS(SVG, "path");
  queuePath.setAttribute("class", "queued");
  queueLayer.appendChild(queuePath);
  var retryPaths = [], barStyle = new Array(tasks.length), barTop = new Array(tasks.length);
  for (var i = 0; i < tasks.length; i++) {
    var task = tasks[i];
    barStyle[i] = "bar s-" + task[STATUS] + (task[GROUP] ? " group" : "");
    barTop[i] = (laneTop[task[LANE]] + task[DEPTH]) * rowHeight + 1;
    if (task[ATTEMPTS].some(function (attempt) { return attempt[2] === "retried"; })) {
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("class", "retried");
      retryLayer.appendChild(path);
      retryPaths.push([i, path]);
    }
  }
  bars.setAttribute("height", rowCount * rowHeight + 2);

  var zoom = 1, scale = 1;
  function baseWidth() { return Math.max(300, chart.clientWidth - 2); }
  function draw() {
    var width = Math.round(baseWidth() * zoom);
    scale = width / span;
    bars.setAttribute("width", width);
    axis.setAttribute("width", width);
    var parts = new Array(tasks.length);
    for (var i = 0; i < tasks.length; i++) {
      var task = tasks[i];
      parts[i] = '<rect class="' + barStyle[i] + (i === selected ? " selected" : "") + '" data-i="' + i +
        '" x="' + (task[START] * scale).toFixed(1) + '" y="' + barTop[i] + '" width="' +
        Math.max(1.5, (task[END] - task[START]) * scale).toFixed(1) + '" height="' + barHeight + '"/>';
    }
    barLayer.innerHTML = parts.join("");
    retryPaths.forEach(function (entry) {
      var task = tasks[entry[0]], y = (laneTop[task[LANE]] + task[DEPTH]) * rowHeight + 1, d = "";
      task[ATTEMPTS].forEach(function (attempt) {
        if (attempt[2] !== "retried") return;
        var end = attempt[1] === null ? task[END] : attempt[1];
        var x = attempt[0] * scale, w = Math.max(1.5, (end - attempt[0]) * scale);
        d += "M" + x.toFixed(1) + " " + y + "h" + w.toFixed(1) + "v" + barHeight + "h" + (-w).toFixed(1) + "z";
      });
      entry[1].setAttribute("d", d);
    });
    var queued = "";
    for (var q = 0; q < tasks.length; q++) {
      var waiting = tasks[q];
      if (!waiting[QUEUED]) continue;
      var qy = (laneTop[waiting[LANE]] + waiting[DEPTH]) * rowHeight + 1;
      var qw = Math.max(1.5, Math.min(waiting[QUEUED], waiting[END] - waiting[START]) * scale);
      queued += "M" + (waiting[START] * scale).toFixed(1) + " " + qy + "h" + qw.toFixed(1) + "v" + barHeight + "h" + (-qw).toFixed(1) + "z";
    }
    queuePath.setAttribute("d", queued);
    drawLabels();
    drawAxis(width);
    zoomLabel.textContent = zoom === 1 ? "" : "×" + (zoom < 10 ? zoom.toFixed(1) : Math.round(zoom));
  }
  function drawLabels() {
    labelLayer.textContent = "";
    if (barHeight < 11) return;
    var shown = 0;
    for (var i = 0; i < tasks.length && shown < 4000; i++) {
      var task = tasks[i], width = (task[END] - task[START]) * scale;
      if (width < task[NAME].length * 6.5 + 8) continue;
      var text = document.createElementNS(SVG, "text");
      text.setAttribute("class", "label" + (task[GROUP] ? " on-group" : ""));
      text.setAttribute("x", (task[START] * scale + 4).toFixed(1));
      text.setAttribute("y", (laneTop[task[LANE]] + task[DEPTH]) * rowHeight + 1 + barHeight - 3);
      text.textContent = task[NAME];
      labelLayer.appendChild(text);
      shown++;
    }
  }
  function drawAxis(width) {
    axis.textContent = "";
    grid.textContent = "";
    var wanted = span / Math.max(1, width / 90), step = 1;
    while (step * 10 <= wanted) step *= 10;
    if (step * 2 >= wanted) step *= 2; else if (step * 5 >= wanted) step *= 5; else step *= 10;
    var height = rowCount * rowHeight + 2;
    for (var at = 0; at <= span + step / 2; at += step) {
      var x = (at * scale).toFixed(1);
      var line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", x); line.setAttribute("x2", x); line.setAttribute("y1", 14); line.setAttribute("y2", 22);
      axis.appendChild(line);
      var label = document.createElementNS(SVG, "text");
      label.setAttribute("x", at === 0 ? 2 : x); label.setAttribute("y", 11);
      label.setAttribute("text-anchor", at === 0 ? "start" : "middle");
      label.textContent = formatOffset(at);
      axis.appendChild(label);
      var rule = document.createElementNS(SVG, "line");
      rule.setAttribute("class", "grid");
      rule.setAttribute("x1", x); rule.setAttribute("x2", x); rule.setAttribute("y1", 0); rule.setAttribute("y2", height);
      grid.appendChild(rule);
    }
  }

  // Zoom keeps the time under the pointer (or the middle) where it is.
  var MAX_ZOOM = Math.max(1, Math.min(span / 20, 2000000 / baseWidth()));
  function zoomTo(next, anchorX) {
    next = Math.min(MAX_ZOOM, Math.max(1, next));
    if (next === zoom) return;
    if (anchorX === undefined) anchorX = chart.clientWidth / 2;
    var time = (chart.scrollLeft + anchorX) / scale;
    zoom = next;
    draw();
    chart.scrollLeft = time * scale - anchorX;
  }
  document.getElementById("zoom-in").addEventListener("click", function () { zoomTo(zoom * 2); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomTo(zoom / 2); });
  document.getElementById("zoom-fit").addEventListener("click", function () { zoomTo(1); });
  chart.addEventListener("wheel", function (event) {
    if (!event.ctrlKey && !event.metaKey) return;
    event.preventDefault();
    var box = chart.getBoundingClientRect();
    zoomTo(zoom * Math.pow(1.0015, -event.deltaY), event.clientX - box.left);
  }, { passive: false });
  document.addEventListener("keydown", function (event) {
    if (event.target && /INPUT|TEXTAREA/.test(event.target.tagName)) return;
    if (event.key === "+" || event.key === "=") zoomTo(zoom * 2);
    else if (event.key === "-") zoomTo(zoom / 2);
    else if (event.key === "0") zoomTo(1);
  });
  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(draw, 100);
  });

  // Hover: a short tip; click: the whole story in the details panel.
  // The work's duration: the time waiting for a worker is shown apart.
  function duration(task) { return task[STARTED] ? Math.max(0, task[END] - task[START] - task[QUEUED]) / 1e6 : null; }
  function summary(index) {
    var task = tasks[index], lines = [pathOf(index).join(" › "), task[STATUS] + (task[STARTED] ? " in " + formatSeconds(duration(task)) : "")];
    if (task[DESCRIPTION]) lines.splice(1, 0, task[DESCRIPTION]);
    if (task[ATTEMPTS].length > 1) lines.push(task[ATTEMPTS].length + " attempts");
    if (task[QUEUED]) lines.push("queued " + formatSeconds(task[QUEUED] / 1e6) + " for a worker");
    if (task[ERROR] >= 0) lines.push(describe(task[ERROR]));
    if (task[REASON]) lines.push(task[REASON]);
    return lines.join("\n");
  }
  bars.addEventListener("mousemove", function (event) {
    var index = event.target.getAttribute("data-i");
    if (index === null) { tip.hidden = true; return; }
    tip.textContent = summary(+index);
    tip.hidden = false;
    var x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = event.clientY + 16 + "px";
  });
  bars.addEventListener("mouseleave", function () { tip.hidden = true; });
  bars.addEventListener("click", function (event) {
    var index = event.target.getAttribute("data-i");
    if (index !== null) select(+index, false);
  });

  var treeRows = new Array(tasks.length);
  function select(index, scrollChart) {
    if (selected >= 0) {
      rects[selected].classList.remove("selected");
      if (treeRows[selected]) treeRows[selected].classList.remove("selected");
    }
    selected = index;
    rects[index].classList.add("selected");
    if (treeRows[index]) treeRows[index].classList.add("selected");
    showDetails(index);
    if (scrollChart) {
      tree.scrollTop = treePosition[index] * TREE_ROW - tree.clientHeight / 2;
      var task = tasks[index];
      chart.scrollLeft = task[START] * scale - 40;
      chart.scrollTop = (laneTop[task[LANE]] + task[DEPTH]) * rowHeight - chart.clientHeight / 2;
    }
  }
  function showDetails(index) {
    var task = tasks[index], body = document.getElementById("details-body");
    var section = document.getElementById("details");
    body.textContent = "";
    var table = element("table");
    function row(name, value) {
      if (value === "" || value === null || value === undefined) return;
      var tr = element("tr");
      tr.appendChild(element("th", {}, name));
      tr.appendChild(element("td", {}, value));
      table.appendChild(tr);
    }
    row("Path", pathOf(index).join(" › "));
    row("Description", task[DESCRIPTION]);
    row("Key", task[KEY]);
    row("Kind", task[GROUP] ? "group" : "task");
    row("Status", task[STATUS]);
    row(task[STARTED] ? "Started" : "Decided", clock(task[START]) + "  (+" + formatOffset(task[START]) + ")");
    if (task[STARTED]) {
      row("Ended", clock(task[END]) + "  (+" + formatOffset(task[END]) + ")");
      row("Duration", formatSeconds(duration(task)));
    }
    row("Reason", task[REASON]);
    body.appendChild(table);
    if (task[ATTEMPTS].length > 1) {
      body.appendChild(element("h3", {}, "Attempts"));
      var attempts = element("table");
      task[ATTEMPTS].forEach(function (attempt, number) {
        var tr = element("tr"), end = attempt[1] === null ? task[END] : attempt[1];
        tr.appendChild(element("th", {}, "#" + (number + 1)));
        tr.appendChild(element("td", {}, "+" + formatOffset(attempt[0])));
        tr.appendChild(element("td", {}, formatSeconds((end - attempt[0]) / 1e6)));
        tr.appendChild(element("td", {}, attempt[2]));
        tr.appendChild(element("td", {}, attempt[3] >= 0 ? describe(attempt[3]) : ""));
        attempts.appendChild(tr);
      });
      body.appendChild(attempts);
    }
    if (task[ERROR] >= 0) {
      var error = data.errors[task[ERROR]];
      body.appendChild(element("h3", {}, "Error"));
      body.appendChild(element("p", { "class": "message" }, describe(task[ERROR])));
      if (error[2]) body.appendChild(element("pre", { "class": "traceback" }, error[2]));
    }
    if (task[OUTPUT]) {
      body.appendChild(element("h3", {}, "Output (last lines)"));
      body.appendChild(element("pre", { "class": "output" }, task[OUTPUT]));
    }
    section.hidden = false;
  }

  // The tree, in the order the tasks sit in their groups. Only the rows in
  // view are in the page (a run of 10,000 tasks would otherwise make 40,000
  // elements for the browser to lay out); scrolling draws the others.
  var TREE_ROW = 20, treeOrder = [], treePosition = new Array(tasks.length);
  var tree = document.getElementById("tree"), treeSpace = element("div", { "class": "tree-space" });
  function drawTree() {
    var children = tasks.map(function () { return []; }), roots = [];
    tasks.forEach(function (task, index) {
      if (task[PARENT] >= 0) children[task[PARENT]].push(index); else roots.push(index);
    });
    var stack = roots.slice().reverse().map(function (index) { return [index, 0]; });
    while (stack.length) {
      var top = stack.pop(), index = top[0];
      treePosition[index] = treeOrder.length;
      treeOrder.push(top);
      for (var c = children[index].length - 1; c >= 0; c--) stack.push([children[index][c], top[1] + 1]);
    }
    treeSpace.style.height = treeOrder.length * TREE_ROW + "px";
    tree.appendChild(treeSpace);
    drawTreeRows();
    var pending = false;
    tree.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; drawTreeRows(); });
    });
    tree.addEventListener("click", function (event) {
      var node = event.target.closest(".node");
      if (node) select(+node.getAttribute("data-i"), true);
    });
  }
  function treeRow(index, depth) {
    var task = tasks[index];
    var node = element("div", { "class": "node" + (task[GROUP] ? " group" : "") + (index === selected ? " selected" : ""), "data-i": index, role: "treeitem" });
    node.style.top = treePosition[index] * TREE_ROW + "px";
    node.style.paddingLeft = 8 + depth * 16 + "px";
    node.appendChild(element("span", { "class": "mark s-" + task[STATUS], title: task[STATUS] }, MARKS[task[STATUS]] || "?"));
    node.appendChild(element("span", { "class": "name" }, task[NAME]));
    if (task[STARTED]) node.appendChild(element("span", { "class": "time" }, formatSeconds(duration(task))));
    var why = task[ERROR] >= 0 ? describe(task[ERROR]) : task[REASON];
    if (task[ATTEMPTS].length > 1) why = task[ATTEMPTS].length + " attempts" + (why ? " · " + why : "");
    if (why) node.appendChild(element("span", { "class": "why" }, why.split("\n")[0].slice(0, 200)));
    return node;
  }
  function drawTreeRows() {
    var first = Math.max(0, Math.floor(tree.scrollTop / TREE_ROW) - 20);
    var last = Math.min(treeOrder.length, first + Math.ceil((tree.clientHeight || 600) / TREE_ROW) + 40);
    var fragment = document.createDocumentFragment();
    treeRows = new Array(tasks.length);
    for (var k = first; k < last; k++) {
      var node = treeRow(treeOrder[k][0], treeOrder[k][1]);
      treeRows[treeOrder[k][0]] = node;
      fragment.appendChild(node);
    }
    treeSpace.textContent = "";
    treeSpace.appendChild(fragment);
  }
  document.querySelectorAll(".failure").forEach(function (failure) {
    failure.querySelector("h3").addEventListener("click", function () {
      select(+failure.getAttribute("data-i"), true);
    });
  });

  draw();
  drawTree();
  var report = { tasks: tasks.length, bars: rects.length, lanes: data.lanes.length, renderMs: performance.now() - began, paintedMs: null };
  window.flow2Report = report;
  // Milliseconds from opening the page to its first frame with everything drawn.
  requestAnimationFrame(function () { setTimeout(function () { report.paintedMs = performance.now(); }, 0); });
  document.documentElement.setAttribute("data-bars", String(rects.length));
  document.documentElement.setAttribute("data-render-ms", report.renderMs.toFixed(1));
})();
