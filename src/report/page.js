// weir report: draws the page from the JSON embedded in it (no network, no server).
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });
  // What the console is told of errors counts too (the self-test reports it).
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  var data = JSON.parse(document.getElementById("weir-data").textContent);
  var PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  var REASON_COLOR = { queue_full: "#e15759", overflow: "#f28e2b", aqm: "#b07aa1", policed: "#9c755f", malformed: "#bab0ac", shutdown: "#76b7b2", no_buffer: "#edc948", tx_error: "#59a14f", reload: "#4e79a7", budget: "#ff9da7", link_down: "#d37295" };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function num(n) { return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"); }
  function bytes(n) {
    var u = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "kB"]];
    for (var i = 0; i < u.length; i++) if (n >= u[i][0]) return (n / u[i][0]).toFixed(n / u[i][0] >= 100 ? 0 : n / u[i][0] >= 10 ? 1 : 2) + " " + u[i][1];
    return n + " B";
  }
  function bits(n) {
    var u = [[1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
    for (var i = 0; i < u.length; i++) if (n >= u[i][0]) return (n / u[i][0]).toFixed(2) + " " + u[i][1];
    return Math.round(n) + " bit/s";
  }
  function ms(v) { return v === null || v === undefined ? "-" : v.toFixed(3); }
  function classColor(name) {
    var i = data.groups.indexOf(name);
    return i >= 0 ? PALETTE[i % PALETTE.length] : "#7f7f7f";
  }

  // A table whose rows are objects; columns [title, key, format, isText]. Sortable by click.
  function table(parent, columns, rows, id) {
    var wrap = el("div", { "class": "scroll tall" });
    var t = el("table", { id: id });
    var head = el("tr");
    columns.forEach(function (c, ci) {
      var th = el("th", { "class": "sortable" + (c[3] ? " text" : ""), "data-col": String(ci) }, c[0]);
      th.addEventListener("click", function () { sortBy(t, columns, rows, ci, th); });
      head.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
    t.appendChild(el("tbody"));
    fill(t, columns, rows);
    wrap.appendChild(t);
    parent.appendChild(wrap);
    return t;
  }
  function fill(t, columns, rows) {
    var body = t.tBodies[0];
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr");
      columns.forEach(function (c) {
        var v = typeof c[1] === "function" ? c[1](r) : r[c[1]];
        var td = el("td", { "class": c[3] ? "text" : "", "data-value": v === null || v === undefined ? "" : String(v) }, c[2] ? c[2](v) : (v === null || v === undefined ? "-" : String(v)));
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function sortBy(t, columns, rows, ci, th) {
    var c = columns[ci];
    var desc = !th.classList.contains("sorted-desc");
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(desc ? "sorted-desc" : "sorted-asc");
    var get = function (r) { return typeof c[1] === "function" ? c[1](r) : r[c[1]]; };
    rows.sort(function (a, b) {
      var x = get(a), y = get(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      var r = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return desc ? -r : r;
    });
    fill(t, columns, rows);
  }

  function kv(parent, pairs) {
    var t = el("table", { "class": "kv" });
    pairs.forEach(function (p) {
      var tr = el("tr");
      tr.appendChild(el("td", {}, p[0]));
      tr.appendChild(el("td", { "data-key": p[2] || "" }, p[1]));
      t.appendChild(tr);
    });
    parent.appendChild(t);
  }

  var charts = [];
  function chart(parent, title, series, yLabel, opts) {
    var box = el("div", { "class": "chart" });
    box.appendChild(el("h3", {}, title));
    var target = el("div");
    box.appendChild(target);
    parent.appendChild(box);
    var width = Math.max(280, Math.min((box.getBoundingClientRect().width || 560) - 12, 900));
    var x = (opts && opts.x) || data.times;
    var u = new uPlot({
      width: width, height: 260,
      scales: { x: { time: false } },
      axes: [{ label: (opts && opts.xLabel) || data.time_axis },
             { label: yLabel, size: 70, values: function (u, ticks) { return ticks.map(function (v) { return v === null ? "" : Math.abs(v) >= 1e6 ? (v / 1e6).toPrecision(3) + "M" : Math.abs(v) >= 1e3 ? (v / 1e3).toPrecision(3) + "k" : Number(v.toPrecision(3)).toString(); }); } }],
      series: [{ label: (opts && opts.xName) || "s" }].concat(series.map(function (s) {
        return { label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, value: s.fmt ? function (u, v) { return v === null ? "-" : s.fmt(v); } : undefined, points: { show: false } };
      })),
      cursor: { drag: { x: true, y: false } },
      legend: { live: true }
    }, [x].concat(series.map(function (s) { return s.data; })), target);
    charts.push(u);
    boxes.push(box);
    return u;
  }
  var boxes = [];
  // A chart made while its row held fewer charts is wider than its box now: fit them all.
  function fit() {
    charts.forEach(function (u, i) {
      var w = Math.max(280, Math.min(boxes[i].getBoundingClientRect().width - 12, 900));
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height: 260 });
    });
  }
  window.addEventListener("resize", fit);

  // --- Summary -----------------------------------------------------------------------
  var r = data.replay;
  var sum = document.getElementById("summary-body");
  var dropsByReason = {};
  r.classes.forEach(function (c) {
    for (var k in c.drops_by_reason) dropsByReason[k] = (dropsByReason[k] || 0) + c.drops_by_reason[k];
  });
  var reasons = Object.keys(dropsByReason).filter(function (k) { return dropsByReason[k] > 0; });
  kv(sum, [
    ["capture", data.capture],
    ["config", data.config || "none: the capture alone, nothing shaped"],
    ["span", r.span_s.toFixed(3) + " s (first arrival to last departure)", "span_s"],
    ["frames read", num(r.frames_read), "frames_read"],
    ["frames received / forwarded / dropped", num(r.totals.received) + " / " + num(r.totals.forwarded) + " / " + num(r.totals.dropped), "totals"],
    ["bytes received", bytes(r.classes.reduce(function (a, c) { return a + c.received_bytes; }, 0))],
    ["upload (out on wan) / download (out on lan) / guessed", num(r.directions.upload) + " / " + num(r.directions.download) + " / " + num(r.directions.guessed), "directions"],
    ["drops by reason", reasons.length ? reasons.map(function (k) { return k + " " + num(dropsByReason[k]); }).join(", ") : "none", "drops"],
    ["flows listed / held at the end / pushed out of the table", num(data.flows.length) + " / " + num(data.flows_held) + " / " + num(data.flows_evicted)],
    ["interval of the charts", (data.interval_s * 1000) + " ms"]
  ]);
  sum.appendChild(el("h3", {}, "Per class"));
  var classCols = [
    ["port", "port", null, true], ["class", "name", null, true],
    ["received", "received_frames", num], ["forwarded", "forwarded_frames", num], ["dropped", "dropped_frames", num],
    ["bytes received", "received_bytes", bytes], ["avg rate", "avg_rate_bps", bits],
    ["drops by reason", function (c) { var k = Object.keys(c.drops_by_reason || {}).filter(function (x) { return c.drops_by_reason[x] > 0; }); return k.map(function (x) { return x + " " + c.drops_by_reason[x]; }).join(", ") || "-"; }, null, true]
  ];
  if (data.shaped) classCols.push(["delay p50 ms", function (c) { return c.forwarded_frames ? c.sojourn_us.p50 / 1000 : null; }, ms], ["p99 ms", function (c) { return c.forwarded_frames ? c.sojourn_us.p99 / 1000 : null; }, ms]);
  table(sum, classCols, r.classes.slice(), "class-table");

  // --- Rates ---------------------------------------------------------------------------
  var rates = document.getElementById("rates-body");
  ["wan", "lan"].forEach(function (port) {
    var mine = data.series.filter(function (s) { return s.port === port && s.offered_bps.some(function (v) { return v > 0; }); });
    if (!mine.length) { rates.appendChild(el("p", { "class": "note" }, "port " + port + ": no traffic")); return; }
    var lines = [];
    mine.forEach(function (s) {
      var c = classColor(data.shaped ? s.name : null);
      if (!data.shaped) c = PALETTE[port === "wan" ? 0 : 1];
      lines.push({ label: (data.shaped ? s.name + " offered" : (port === "wan" ? "upload" : "download")), color: c, dash: data.shaped ? [5, 4] : undefined, data: s.offered_bps, fmt: bits });
      if (data.shaped) lines.push({ label: s.name + " forwarded", color: c, width: 2, data: s.forwarded_bps, fmt: bits });
    });
    chart(rates, port === "wan" ? "Upload (out on wan)" : "Download (out on lan)", lines, "bit/s");
  });

  // --- Delay ---------------------------------------------------------------------------
  var delay = document.getElementById("delay-body");
  if (data.shaped) {
    ["wan", "lan"].forEach(function (port) {
      var mine = data.series.filter(function (s) { return s.port === port && s.p99_ms.some(function (v) { return v !== null; }); });
      if (!mine.length) return;
      var lines = [];
      mine.forEach(function (s) {
        lines.push({ label: s.name + " p99", color: classColor(s.name), width: 2, data: s.p99_ms, fmt: ms });
        lines.push({ label: s.name + " p50", color: classColor(s.name), dash: [5, 4], data: s.p50_ms, fmt: ms });
      });
      chart(delay, "Queueing delay on " + port + " per interval (ms)", lines, "ms");
    });
    var withCdf = data.series.filter(function (s) { return s.cdf.length > 1; });
    if (withCdf.length) {
      // One x axis for every class: the union of their points, each class stepped onto it.
      var xs = [];
      withCdf.forEach(function (s) { s.cdf.forEach(function (p) { xs.push(p[0]); }); });
      xs = xs.filter(function (v, i, a) { return a.indexOf(v) === i; }).sort(function (a, b) { return a - b; });
      var lines = withCdf.map(function (s) {
        var j = 0, last = 0;
        return { label: s.port + " " + s.name, color: classColor(s.name), width: 2, fmt: function (v) { return (v * 100).toFixed(1) + "%"; }, data: xs.map(function (x) {
          while (j < s.cdf.length && s.cdf[j][0] <= x) { last = s.cdf[j][1]; j++; }
          return last;
        }) };
      });
      chart(delay, "Distribution of the queueing delay per class (fraction of frames at or below)", lines, "fraction", { x: xs, xLabel: "ms", xName: "ms" });
    }
  } else {
    delay.appendChild(el("p", { "class": "note" }, "No config: nothing was queued. Give -c CONFIG to see the delay a policy adds."));
  }

  // --- Drops ---------------------------------------------------------------------------
  var dropsBody = document.getElementById("drops-body");
  var dropSeries = data.drops.filter(function (d) { return d.frames.some(function (v) { return v > 0; }); });
  if (dropSeries.length) {
    chart(dropsBody, "Frames dropped per interval, by reason", dropSeries.map(function (d) {
      return { label: d.reason, color: REASON_COLOR[d.reason] || "#333", width: 2, data: d.frames, fmt: num };
    }), "frames");
  } else {
    dropsBody.appendChild(el("p", { "class": "note" }, "No frame was dropped."));
  }

  // --- Applications, talkers, flows ------------------------------------------------------
  table(document.getElementById("apps-body"), [
    ["application", "app", null, true], ["flows", "flows", num], ["frames", "frames", num], ["bytes", "bytes", bytes]
  ], data.apps.slice(), "apps-table");
  table(document.getElementById("talkers-body"), [
    ["host", "host", null, true], ["LAN", function (h) { return h.lan ? "yes" : ""; }, null, true],
    ["sent", "sent", bytes], ["received", "received", bytes], ["total", function (h) { return h.sent + h.received; }, bytes], ["peers", "peers", num]
  ], data.hosts.slice(), "talkers-table");
  table(document.getElementById("flows-body"), [
    ["proto", "proto", null, true], ["from", "src", null, true], ["to", "dst", null, true],
    ["app", "app", null, true], ["server name", "server_name", null, true],
    ["class up", "class_up", null, true], ["class down", "class_down", null, true],
    ["bytes up", "bytes_up", bytes], ["bytes down", "bytes_down", bytes],
    ["total", function (f) { return f.bytes_up + f.bytes_down; }, bytes],
    ["frames", function (f) { return f.frames_up + f.frames_down; }, num],
    ["seconds", function (f) { return Math.round((f.last_ts - f.first_ts) * 1000) / 1000; }]
  ], data.flows.slice(), "flows-table");

  // --- The graph: drawn by weir, zoomed and panned here ----------------------------------
  var svg = document.querySelector("#graph-box svg");
  if (svg) {
    var vb = [0, 0, 1000, 1000];
    var set = function () { svg.setAttribute("viewBox", vb.join(" ")); };
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var k = e.deltaY < 0 ? 0.85 : 1 / 0.85;
      var rect = svg.getBoundingClientRect();
      var px = vb[0] + (e.clientX - rect.left) / rect.width * vb[2];
      var py = vb[1] + (e.clientY - rect.top) / rect.height * vb[3];
      vb = [px - (px - vb[0]) * k, py - (py - vb[1]) * k, vb[2] * k, vb[3] * k];
      set();
    }, { passive: false });
    var drag = null;
    svg.addEventListener("pointerdown", function (e) { drag = [e.clientX, e.clientY, vb[0], vb[1]]; svg.setPointerCapture(e.pointerId); });
    svg.addEventListener("pointermove", function (e) {
      if (!drag) return;
      var rect = svg.getBoundingClientRect();
      vb[0] = drag[2] - (e.clientX - drag[0]) / rect.width * vb[2];
      vb[1] = drag[3] - (e.clientY - drag[1]) / rect.height * vb[3];
      set();
    });
    svg.addEventListener("pointerup", function () { drag = null; });
    svg.addEventListener("dblclick", function () { vb = [0, 0, 1000, 1000]; set(); });
  }

  // ?only=rates: that section alone (for screenshots and links).
  var only = /[?&]only=([a-z]+)/.exec(location.search);
  if (only) {
    Array.prototype.forEach.call(document.querySelectorAll("section, nav"), function (s) {
      if (s.id !== only[1]) s.style.display = "none";
    });
  }
  fit();
  var drawnAt = performance.now();

  // --- Self-test (?selftest): what a headless browser reads back ---------------------------
  function selftest() {
    var drawn = charts.map(function (u) {
      var c = u.ctx.canvas, px = u.ctx.getImageData(0, 0, c.width, c.height).data, ink = 0;
      for (var i = 3; i < px.length; i += 4) if (px[i] !== 0) ink++;
      return ink;
    });
    var flows = document.getElementById("flows-table");
    var head = flows ? flows.tHead.rows[0].cells[9] : null;
    var sorted = null;
    if (head && flows.tBodies[0].rows.length > 1) {
      head.click(); // descending by total bytes
      var vals = Array.prototype.map.call(flows.tBodies[0].rows, function (tr) { return Number(tr.cells[9].getAttribute("data-value")); });
      head.click(); // ascending
      var first = Number(flows.tBodies[0].rows[0].cells[9].getAttribute("data-value"));
      sorted = vals.every(function (v, i) { return i === 0 || vals[i - 1] >= v; }) && first === Math.min.apply(null, vals);
    }
    var out = {
      errors: errors,
      charts: charts.length,
      charts_drawn: drawn.filter(function (n) { return n > 0; }).length,
      graph_nodes: document.querySelectorAll("#graph-box circle").length,
      graph_edges: document.querySelectorAll("#graph-box line").length,
      flows_rows: flows ? flows.tBodies[0].rows.length : 0,
      sorted: sorted,
      ms_to_draw: Math.round(drawnAt)
    };
    var pre = document.getElementById("selftest");
    pre.textContent = JSON.stringify(out);
  }
  if (/[?&]selftest/.test(location.search)) setTimeout(selftest, 0);
})();
