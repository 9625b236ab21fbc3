/*
 * Circuit Atlas attribution-graph viewer: draws the graph inlined in #graph-data as SVG.
 *
 * Hand-written and dependency-free so that the page works offline from file:// under a CSP that
 * forbids every request. Every string that comes from the graph (labels, tokens, ids, the prompt)
 * is written with textContent or as an SVG attribute value, never parsed as HTML.
 *
 * Layout (as Neuronpedia draws attribution graphs): x = token position, y = layer, embeddings at
 * the bottom and logits at the top; nodes sharing a (layer, position) cell sit side by side, most
 * influential first, wrapping onto extra lines within the cell when the column is too narrow.
 *
 * Sliders: both are percentiles. The node threshold p hides the p% least influential nodes
 * (data.hideOrder; embeddings, logits and pinned nodes always stay). The edge threshold p hides
 * the edges whose |weight| is below the p-th percentile of the edges in the page (data.edges is
 * sorted weakest first, so that is a prefix); an edge is also hidden with either of its ends.
 */
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var POSITIVE = '#2166ac';
  var NEGATIVE = '#d6372b';
  var KIND_STYLE = {
    feature: { fill: '#f2b134', shape: 'circle', name: 'feature' },
    error: { fill: '#9aa0a6', shape: 'square', name: 'error (reconstruction)' },
    embedding: { fill: '#5aa469', shape: 'wide', name: 'embedding' },
    input: { fill: '#5aa469', shape: 'wide', name: 'input' },
    logit: { fill: '#8e6bbf', shape: 'wide', name: 'logit' },
    logits: { fill: '#8e6bbf', shape: 'wide', name: 'logits' },
    attention_head: { fill: '#f2b134', shape: 'circle', name: 'attention head' },
    mlp: { fill: '#e07b39', shape: 'square', name: 'MLP' },
    roi: { fill: '#f2b134', shape: 'circle', name: 'ROI' },
    embed_feature: { fill: '#5aa469', shape: 'circle', name: 'embedding SAE feature' },
    attn_feature: { fill: '#4e9bd1', shape: 'circle', name: 'attention SAE feature' },
    mlp_feature: { fill: '#e07b39', shape: 'circle', name: 'MLP SAE feature' },
    resid_feature: { fill: '#f2b134', shape: 'circle', name: 'residual SAE feature' },
    embed_error: { fill: '#9aa0a6', shape: 'square', name: 'SAE error term' },
    attn_error: { fill: '#9aa0a6', shape: 'square', name: 'SAE error term' },
    mlp_error: { fill: '#9aa0a6', shape: 'square', name: 'SAE error term' },
    resid_error: { fill: '#9aa0a6', shape: 'square', name: 'SAE error term' }
  };
  // Sparse feature circuits: each layer's sites get rows of their own, in forward order.
  var SITE_OFFSET = { attn: 0.25, mlp: 0.5, resid: 0.75 };
  var SITE_OF_OFFSET = { 0.25: 'attn', 0.5: 'mlp', 0.75: 'resid' };
  var GROUP_COLOURS = [
    '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22',
    '#7f7f7f', '#aec7e8', '#ffbb78', '#98df8a', '#c5b0d5', '#c49c94', '#f7b6d2', '#9edae5'
  ];
  var UNGROUPED = '#d9d9d9';
  var BOTTOM = 'bottom';
  var TOP = 'top';

  var data = JSON.parse(document.getElementById('graph-data').textContent);
  var nodes = data.nodes;
  var edges = data.edges;
  var n = nodes.length;
  var m = edges.length;

  var state = {
    pinned: [],
    nodeThreshold: data.defaults.nodeThreshold,
    edgeThreshold: data.defaults.edgeThreshold,
    hiddenNode: new Uint8Array(n),
    hiddenEdge: new Uint8Array(m),
    hovered: -1
  };
  var keyToRow = {};
  var nodeEls = [];
  var edgeEls = [];
  var labelEls = {};
  var x = new Float64Array(n);
  var y = new Float64Array(n);
  var size = 4;
  var groupOf = new Int32Array(n).fill(-1);
  var groupsOfNode = [];
  var incident = [];

  var svg = document.getElementById('graph');
  var pane = document.getElementById('graph-pane');
  var card = document.getElementById('hover-card');
  var edgeLayer = svgEl('g', { 'class': 'edges' });
  var gridLayer = svgEl('g', { 'class': 'grid' });
  var nodeLayer = svgEl('g', { 'class': 'nodes' });
  var labelLayer = svgEl('g', { 'class': 'pin-labels' });

  // ------------------------------------------------------------------------------- helpers

  function svgEl(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) { el.setAttribute(name, attrs[name]); });
    return el;
  }

  function htmlEl(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined && text !== null) { el.textContent = String(text); }
    return el;
  }

  function kindStyle(kind) {
    return KIND_STYLE[kind] || { fill: '#f2b134', shape: 'circle', name: kind };
  }

  function formatNumber(value) {
    if (value === null || value === undefined) { return '—'; }
    var abs = Math.abs(value);
    if (abs !== 0 && (abs < 0.001 || abs >= 100000)) { return value.toExponential(3); }
    return String(Math.round(value * 10000) / 10000);
  }

  function count(value) {
    return value.toLocaleString('en-US');
  }

  function nodeTitle(node) {
    return node.label ? node.label : node.id;
  }

  function shellQuote(text) {
    var s = String(text);
    if (s === '') { return "''"; }
    if (/^[A-Za-z0-9_@%+=:,.\/-]+$/.test(s)) { return s; }
    return "'" + s.replace(/'/g, "'\"'\"'") + "'";
  }

  function isPinned(row) {
    return state.pinned.indexOf(nodes[row].key) !== -1;
  }

  // ------------------------------------------------------------------------------- layout

  function saeSite(kind) {
    var match = /^(embed|attn|mlp|resid)_(feature|error)$/.exec(kind);
    return match ? match[1] : null;
  }

  function rowName(node) {
    var site = saeSite(node.kind);
    if (site === 'embed') { return BOTTOM; }
    if (site !== null) { return (node.layer === null ? 0 : node.layer) + SITE_OFFSET[site]; }
    if (node.kind === 'embedding' || node.kind === 'input') { return BOTTOM; }
    if (node.kind === 'logit' || node.kind === 'logits') { return TOP; }
    return node.layer === null ? 0 : node.layer;
  }

  function columnName(node) {
    return node.pos === null ? -1 : node.pos;
  }

  function layoutRows() {
    var layers = {};
    var hasBottom = false;
    var hasTop = false;
    nodes.forEach(function (node) {
      var row = rowName(node);
      if (row === BOTTOM) { hasBottom = true; } else if (row === TOP) { hasTop = true; } else {
        layers[row] = true;
      }
    });
    var rows = Object.keys(layers).map(Number).sort(function (a, b) { return a - b; });
    if (hasBottom) { rows.unshift(BOTTOM); }
    if (hasTop) { rows.push(TOP); }
    return rows;
  }

  function layoutColumns() {
    var seen = {};
    nodes.forEach(function (node) { seen[columnName(node)] = true; });
    data.graph.tokens.forEach(function (_, pos) { seen[pos] = true; });
    return Object.keys(seen).map(Number).sort(function (a, b) { return a - b; });
  }

  function cellsOf() {
    var rank = new Int32Array(n).fill(n);
    data.hideOrder.forEach(function (row, i) { rank[row] = data.hideOrder.length - i; });
    var cells = {};
    nodes.forEach(function (node, row) {
      var id = rowName(node) + '|' + columnName(node);
      (cells[id] = cells[id] || []).push(row);
    });
    Object.keys(cells).forEach(function (id) {
      cells[id].sort(function (a, b) { return rank[a] - rank[b] || a - b; });
    });
    return cells;
  }

  var rows = layoutRows();
  var columns = layoutColumns();
  var cells = cellsOf();
  // A column's share of the width grows with its node count (sub-linearly: crowded cells wrap).
  var columnWeight = columns.map(function (col) {
    var total = 0;
    rows.forEach(function (row) {
      var cell = cells[row + '|' + col];
      if (cell) { total += cell.length; }
    });
    return Math.sqrt(Math.max(total, 4));
  });
  var geometry = null;

  function computeGeometry(width, height) {
    var margin = { left: 54, right: 12, top: 14, bottom: 46 };
    var plotWidth = Math.max(100, width - margin.left - margin.right);
    var plotHeight = Math.max(100, height - margin.top - margin.bottom);
    var widths = columnWidths(plotWidth);
    var left = [];
    var at = margin.left;
    widths.forEach(function (w) {
      left.push(at);
      at += w;
    });
    var rowHeight = plotHeight / rows.length;
    return {
      width: width, height: height, margin: margin, left: left, widths: widths,
      rowHeight: rowHeight, plotBottom: margin.top + plotHeight
    };
  }

  // Widths by weight, but never narrower than the column's token needs (when they fit at all).
  function columnWidths(plotWidth) {
    var least = columns.map(function (col) {
      var token = col >= 0 && col < data.graph.tokens.length ? data.graph.tokens[col] : '';
      return Math.min(110, 16 + 8 * token.length);
    });
    var fixed = columns.map(function () { return false; });
    var widths = [];
    for (var pass = 0; pass < columns.length; pass++) {
      var room = plotWidth;
      var weight = 0;
      columns.forEach(function (_, c) {
        if (fixed[c]) { room -= least[c]; } else { weight += columnWeight[c]; }
      });
      var changed = false;
      widths = columns.map(function (_, c) {
        if (fixed[c]) { return least[c]; }
        var w = Math.max(0, room) * columnWeight[c] / weight;
        if (w < least[c]) { fixed[c] = true; changed = true; }
        return w;
      });
      if (!changed) { break; }
    }
    return widths;
  }

  function rowCentre(g, index) {
    return g.plotBottom - (index + 0.5) * g.rowHeight;
  }

  function placeNodes(g) {
    var spacing = Infinity;
    var plan = [];
    rows.forEach(function (row, r) {
      columns.forEach(function (col, c) {
        var cell = cells[row + '|' + col];
        if (!cell) { return; }
        var usable = g.widths[c] - 8;
        var perLine = Math.max(1, Math.floor(usable / 9));
        var lines = Math.ceil(cell.length / perLine);
        var across = Math.min(cell.length, perLine);
        var step = Math.min(usable / Math.max(across, 1), 16);
        var lineStep = Math.min(g.rowHeight * 0.8 / lines, 12);
        spacing = Math.min(spacing, step, lines > 1 ? lineStep * 1.4 : Infinity);
        plan.push({ cell: cell, r: r, c: c, perLine: perLine, step: step, lineStep: lineStep,
          lines: lines });
      });
    });
    size = Math.max(2, Math.min(5, spacing * 0.42, g.rowHeight * 0.3));
    plan.forEach(function (p) {
      var centreX = g.left[p.c] + g.widths[p.c] / 2;
      var centreY = rowCentre(g, p.r);
      p.cell.forEach(function (row, i) {
        var line = Math.floor(i / p.perLine);
        var inLine = Math.min(p.perLine, p.cell.length - line * p.perLine);
        var slot = i - line * p.perLine;
        x[row] = centreX + (slot - (inLine - 1) / 2) * p.step;
        y[row] = centreY + (line - (p.lines - 1) / 2) * p.lineStep;
      });
    });
  }

  function shapeNode(el, row) {
    var shape = kindStyle(nodes[row].kind).shape;
    if (shape === 'circle') {
      el.setAttribute('cx', x[row]);
      el.setAttribute('cy', y[row]);
      el.setAttribute('r', size);
      return;
    }
    var w = shape === 'wide' ? size * 2.8 : size * 1.7;
    var h = shape === 'wide' ? size * 2 : size * 1.7;
    el.setAttribute('x', x[row] - w / 2);
    el.setAttribute('y', y[row] - h / 2);
    el.setAttribute('width', w);
    el.setAttribute('height', h);
    el.setAttribute('rx', shape === 'wide' ? size * 0.5 : 0.5);
  }

  function drawGrid(g) {
    while (gridLayer.firstChild) { gridLayer.removeChild(gridLayer.firstChild); }
    rows.forEach(function (row, r) {
      var yc = rowCentre(g, r);
      var fraction = typeof row === 'number' ? row - Math.floor(row) : 0;
      var name = row === BOTTOM ? 'Emb' : row === TOP ? 'Logit'
        : fraction ? SITE_OF_OFFSET[fraction] + ' ' + Math.floor(row) : 'L' + row;
      gridLayer.appendChild(svgEl('line', {
        'class': 'row-line', x1: g.margin.left, x2: g.width - g.margin.right, y1: yc, y2: yc
      }));
      var label = svgEl('text', { 'class': 'layer-label', x: g.margin.left - 6, y: yc });
      label.textContent = name;
      gridLayer.appendChild(label);
    });
    columns.forEach(function (col, c) {
      if (c > 0) {
        gridLayer.appendChild(svgEl('line', {
          'class': 'column-line', x1: g.left[c], x2: g.left[c], y1: g.margin.top, y2: g.plotBottom
        }));
      }
      drawToken(g, col, c);
    });
  }

  function drawToken(g, col, c) {
    var xc = g.left[c] + g.widths[c] / 2;
    var token = col >= 0 && col < data.graph.tokens.length ? data.graph.tokens[col] : null;
    var text = svgEl('text', { 'class': 'token', x: xc, y: g.plotBottom + 18 });
    text.textContent = token === null ? (col < 0 ? 'all positions' : '') : token;
    gridLayer.appendChild(text);
    fitText(text, g.widths[c] - 4);
    var pos = svgEl('text', { 'class': 'token-pos', x: xc, y: g.plotBottom + 34 });
    pos.textContent = col < 0 ? '' : 'pos ' + col;
    gridLayer.appendChild(pos);
  }

  function fitText(el, width) {
    var full = el.textContent;
    if (!el.getComputedTextLength || width <= 0) { return; }
    var keep = full.length;
    while (keep > 1 && el.getComputedTextLength() > width) {
      keep -= 1;
      el.textContent = full.slice(0, keep) + '…';
    }
  }

  function layout() {
    var width = svg.clientWidth || 900;
    var height = svg.clientHeight || 600;
    geometry = computeGeometry(width, height);
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    placeNodes(geometry);
    drawGrid(geometry);
    nodeEls.forEach(function (el, row) { shapeNode(el, row); });
    var top = edges.length ? Math.abs(edges[m - 1][2]) : 1;
    edgeEls.forEach(function (el, j) {
      var e = edges[j];
      el.setAttribute('x1', x[e[0]]);
      el.setAttribute('y1', y[e[0]]);
      el.setAttribute('x2', x[e[1]]);
      el.setAttribute('y2', y[e[1]]);
      el.setAttribute('stroke-width', (0.35 + 3.4 * Math.sqrt(Math.abs(e[2]) / top)).toFixed(2));
    });
    drawPinLabels();
  }

  // ------------------------------------------------------------------------------- drawing

  function buildGroups() {
    data.groups.forEach(function (group, g) {
      group.members.forEach(function (row) {
        if (groupOf[row] === -1) { groupOf[row] = g; }
        (groupsOfNode[row] = groupsOfNode[row] || []).push(group.label);
      });
    });
  }

  function nodeFill(row) {
    if (data.groups.length === 0) { return kindStyle(nodes[row].kind).fill; }
    var g = groupOf[row];
    return g === -1 ? UNGROUPED : GROUP_COLOURS[g % GROUP_COLOURS.length];
  }

  function buildNodes() {
    nodes.forEach(function (node, row) {
      keyToRow[node.key] = row;
      var shape = kindStyle(node.kind).shape;
      var el = svgEl(shape === 'circle' ? 'circle' : 'rect', {
        'class': 'node kind-' + node.kind,
        fill: nodeFill(row)
      });
      el.setAttribute('data-node-key', node.key);
      el.setAttribute('data-row', row);
      nodeEls.push(el);
      nodeLayer.appendChild(el);
      incident.push([]);
    });
  }

  function buildEdges() {
    edges.forEach(function (e, j) {
      var el = svgEl('line', { 'class': 'edge ' + (e[2] < 0 ? 'negative' : 'positive') });
      el.setAttribute('stroke', e[2] < 0 ? NEGATIVE : POSITIVE);
      edgeEls.push(el);
      edgeLayer.appendChild(el);
      incident[e[0]].push(j);
      incident[e[1]].push(j);
    });
  }

  function drawPinLabels() {
    while (labelLayer.firstChild) { labelLayer.removeChild(labelLayer.firstChild); }
    labelEls = {};
    if (!geometry) { return; }
    state.pinned.forEach(function (key) {
      var row = keyToRow[key];
      var onLeft = x[row] > geometry.width - 200;
      var text = svgEl('text', {
        'class': 'pin-label', x: x[row] + (onLeft ? -size - 4 : size + 4), y: y[row] - size - 2,
        'text-anchor': onLeft ? 'end' : 'start'
      });
      text.textContent = nodeTitle(nodes[row]);
      fitText(text, 190);
      labelLayer.appendChild(text);
      labelEls[key] = text;
    });
  }

  // ------------------------------------------------------------------------------- filtering

  function applyFilters() {
    var hidden = state.hiddenNode;
    hidden.fill(0);
    var order = data.hideOrder;
    var cut = Math.floor(state.nodeThreshold / 100 * order.length);
    for (var i = 0; i < cut; i++) {
      if (!isPinned(order[i])) { hidden[order[i]] = 1; }
    }
    nodeEls.forEach(function (el, row) { el.classList.toggle('hidden', hidden[row] === 1); });
    var edgeCut = Math.floor(state.edgeThreshold / 100 * m);
    for (var j = 0; j < m; j++) {
      var e = edges[j];
      var off = j < edgeCut || hidden[e[0]] === 1 || hidden[e[1]] === 1 ? 1 : 0;
      if (off !== state.hiddenEdge[j]) {
        state.hiddenEdge[j] = off;
        edgeEls[j].classList.toggle('hidden', off === 1);
      }
    }
    showCounts(cut, edgeCut);
  }

  function showCounts(cut, edgeCut) {
    var shownNodes = visibleNodes();
    var shownEdges = visibleEdges();
    setText('node-threshold-value', state.nodeThreshold + '%');
    setText('edge-threshold-value', state.edgeThreshold + '%');
    setText('node-count', count(shownNodes) + ' of ' + count(n) + ' nodes shown');
    setText('edge-count', count(shownEdges) + ' of ' + count(m) + ' edges shown' +
      (data.edgesInGraph > m ? ' (' + count(data.edgesInGraph) + ' in the graph)' : ''));
    var order = data.hideOrder;
    var by = data.importance === 'influence' ? 'influence' : 'total |weight|';
    var nodeHint = 'Hides the least influential ' + state.nodeThreshold + '% of ' +
      count(order.length) + ' feature/error nodes, ranked by ' + by + '.';
    if (cut > 0 && data.importance === 'influence') {
      var limit = nodes[order[cut - 1]].influence;
      if (limit !== null) {
        nodeHint += ' Hidden: cumulative influence ≥ ' + formatNumber(limit) + '.';
      }
    }
    setText('node-threshold-hint', nodeHint + ' Embeddings, logits and pinned nodes stay.');
    var edgeHint = 'Hides edges with |weight| below the ' + state.edgeThreshold +
      'th percentile of the ' + count(m) + ' edges in this page';
    if (edgeCut < m) {
      edgeHint += ' (shown: |weight| ≥ ' + formatNumber(Math.abs(edges[edgeCut][2])) + ')';
    }
    setText('edge-threshold-hint', edgeHint + '.');
  }

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function visibleNodes() {
    var count = 0;
    for (var i = 0; i < n; i++) { count += state.hiddenNode[i] ? 0 : 1; }
    return count;
  }

  function visibleEdges() {
    var count = 0;
    for (var j = 0; j < m; j++) { count += state.hiddenEdge[j] ? 0 : 1; }
    return count;
  }

  // ------------------------------------------------------------------------------- hover card

  function cardRow(list, name, value) {
    list.appendChild(htmlEl('dt', null, name));
    list.appendChild(htmlEl('dd', null, value));
  }

  function showCard(row) {
    var node = nodes[row];
    while (card.firstChild) { card.removeChild(card.firstChild); }
    card.appendChild(htmlEl('div', 'card-title', nodeTitle(node)));
    var list = htmlEl('dl');
    cardRow(list, 'id', node.id);
    cardRow(list, 'key', node.key);
    cardRow(list, 'kind', node.kind);
    cardRow(list, 'layer', node.layer === null ? '—' : node.layer);
    cardRow(list, 'position', node.pos === null ? '—' : node.pos);
    cardRow(list, 'token', node.token === null ? '—' : node.token);
    cardRow(list, 'activation', formatNumber(node.activation));
    cardRow(list, 'influence', formatNumber(node.influence));
    if (groupsOfNode[row]) { cardRow(list, data.groupKind, groupsOfNode[row].join(', ')); }
    card.appendChild(list);
    card.appendChild(htmlEl('div', 'hint', isPinned(row) ? 'click to unpin' : 'click to pin'));
    card.hidden = false;
    placeCard(row);
  }

  function placeCard(row) {
    var box = svg.getBoundingClientRect();
    var paneBox = pane.getBoundingClientRect();
    var scale = geometry ? box.width / geometry.width : 1;
    var px = box.left - paneBox.left + x[row] * scale;
    var py = box.top - paneBox.top + y[row] * scale;
    var left = px + 14;
    var top = py + 14;
    if (left + card.offsetWidth > paneBox.width - 4) { left = px - 14 - card.offsetWidth; }
    if (top + card.offsetHeight > paneBox.height - 4) { top = py - 14 - card.offsetHeight; }
    card.style.left = Math.max(4, left) + 'px';
    card.style.top = Math.max(4, top) + 'px';
  }

  function highlight(row) {
    if (state.hovered !== -1) {
      nodeEls[state.hovered].classList.remove('hovered');
      incident[state.hovered].forEach(function (j) { edgeEls[j].classList.remove('lit'); });
    }
    state.hovered = row;
    svg.classList.toggle('focusing', row !== -1);
    if (row !== -1) {
      nodeEls[row].classList.add('hovered');
      incident[row].forEach(function (j) { edgeEls[j].classList.add('lit'); });
    }
  }

  function nodeRowOf(target) {
    var el = target && target.closest ? target.closest('.node') : null;
    return el ? Number(el.getAttribute('data-row')) : -1;
  }

  // ------------------------------------------------------------------------------- pinning

  function setPinned(keys) {
    state.pinned = keys.filter(function (key, i) {
      return keyToRow.hasOwnProperty(key) && keys.indexOf(key) === i;
    });
    nodeEls.forEach(function (el, row) { el.classList.toggle('pinned', isPinned(row)); });
    state.pinned.forEach(function (key) { nodeLayer.appendChild(nodeEls[keyToRow[key]]); });
    drawPinLabels();
    renderPinnedList();
    applyFilters();
    var area = document.getElementById('pinned-command');
    if (area.value) { area.value = command(); }
  }

  function togglePin(key) {
    if (state.pinned.indexOf(key) === -1) {
      setPinned(state.pinned.concat([key]));
    } else {
      setPinned(state.pinned.filter(function (k) { return k !== key; }));
    }
  }

  function renderPinnedList() {
    var list = document.getElementById('pinned-list');
    while (list.firstChild) { list.removeChild(list.firstChild); }
    state.pinned.forEach(function (key) {
      var node = nodes[keyToRow[key]];
      var item = htmlEl('li');
      item.setAttribute('data-node-key', key);
      item.appendChild(htmlEl('span', 'pin-title', nodeTitle(node)));
      item.appendChild(htmlEl('span', 'pin-key', node.id));
      var remove = htmlEl('button', 'unpin', '×');
      remove.type = 'button';
      remove.title = 'unpin';
      remove.addEventListener('click', function () { togglePin(key); });
      item.appendChild(remove);
      list.appendChild(item);
    });
    setText('pinned-count', '(' + state.pinned.length + ')');
  }

  function command() {
    return 'circuit-atlas score ' + shellQuote(data.graph.id) + state.pinned.map(function (key) {
      return ' --pinned ' + shellQuote(key);
    }).join('');
  }

  function copyCommand() {
    var area = document.getElementById('pinned-command');
    var status = document.getElementById('copy-status');
    area.value = command();
    area.focus();
    area.select();
    status.textContent =
      'Command written above; select it and copy if the clipboard is unavailable.';
    try {
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(area.value).then(function () {
          status.textContent = 'Copied to the clipboard.';
        }, function () { /* file:// pages often may not write the clipboard */ });
      }
    } catch (err) { /* as above: the textarea holds the command */ }
  }

  // ------------------------------------------------------------------------------- legend

  function legendEntry(parent, swatch, text, className) {
    var item = htmlEl('div', 'legend-entry' + (className ? ' ' + className : ''));
    item.appendChild(swatch);
    item.appendChild(htmlEl('span', 'legend-text', text));
    parent.appendChild(item);
    return item;
  }

  function swatch(colour, shape) {
    var el = htmlEl('span', 'swatch ' + (shape || 'circle'));
    el.style.backgroundColor = colour;
    return el;
  }

  function buildLegend() {
    var legend = document.getElementById('legend');
    legendEntry(legend, swatch(POSITIVE, 'line'), 'positive edge (width ∝ |weight|)',
      'edge-positive');
    legendEntry(legend, swatch(NEGATIVE, 'line'), 'negative edge', 'edge-negative');
    var ring = swatch('#ffffff', 'circle ring');
    legendEntry(legend, ring, 'pinned node', 'pinned-entry');
    if (data.groups.length) {
      buildGroupLegend(legend);
    } else {
      buildKindLegend(legend);
    }
  }

  function buildKindLegend(legend) {
    var seen = {};
    var named = {};  // kinds drawn alike (the SAE error terms of every site) share one entry
    nodes.forEach(function (node) { seen[node.kind] = true; });
    Object.keys(KIND_STYLE).concat(Object.keys(seen)).forEach(function (kind) {
      if (!seen[kind]) { return; }
      seen[kind] = false;
      var style = kindStyle(kind);
      if (named[style.name]) { return; }
      named[style.name] = true;
      legendEntry(legend, swatch(style.fill, style.shape), style.name, 'kind-entry');
    });
  }

  function buildGroupLegend(legend) {
    legend.appendChild(htmlEl('h3', null, data.groupTitle));
    var box = htmlEl('div', 'legend-groups');
    data.groups.forEach(function (group, g) {
      var colour = GROUP_COLOURS[g % GROUP_COLOURS.length];
      var item = legendEntry(box, swatch(colour, 'circle'), group.label, 'legend-group');
      item.appendChild(htmlEl('span', 'legend-count', group.members.length));
      item.addEventListener('mouseenter', function () { spotlight(group.members); });
      item.addEventListener('mouseleave', function () { spotlight(null); });
    });
    legendEntry(box, swatch(UNGROUPED, 'circle'), 'in no group', 'legend-ungrouped');
    legend.appendChild(box);
  }

  function spotlight(members) {
    svg.classList.toggle('spotlight', members !== null);
    nodeEls.forEach(function (el) { el.classList.remove('spotlit'); });
    (members || []).forEach(function (row) { nodeEls[row].classList.add('spotlit'); });
  }

  // ------------------------------------------------------------------------------- header

  function buildHeader() {
    setText('page-title', data.title);
    var parts = [];
    if (data.graph.model) { parts.push('model ' + data.graph.model); }
    parts.push(count(n) + ' nodes, ' + count(data.edgesInGraph) + ' edges');
    var subtitle = document.getElementById('subtitle');
    subtitle.textContent = parts.join(' · ');
    if (data.graph.prompt) {
      subtitle.appendChild(document.createTextNode(' · prompt '));
      subtitle.appendChild(htmlEl('code', 'prompt', data.graph.prompt));
    }
    var notes = [];
    if (data.edgesInGraph > m) {
      notes.push('Only the ' + count(m) + ' strongest of the ' + count(data.edgesInGraph) +
        ' edges (by |weight|) are in this page; ' + count(data.edgesInGraph - m) +
        ' were dropped.');
    }
    if (data.groupMembersMissing) {
      notes.push(data.groupMembersMissing + ' ' + data.groupKind +
        ' member(s) are not nodes of this graph and are not shown.');
    }
    var notice = document.getElementById('notice');
    notice.textContent = notes.join(' ');
    notice.hidden = notes.length === 0;
  }

  // ------------------------------------------------------------------------------- wiring

  function wire() {
    svg.addEventListener('mouseover', function (event) {
      var row = nodeRowOf(event.target);
      if (row === -1 || row === state.hovered) { return; }
      highlight(row);
      showCard(row);
    });
    svg.addEventListener('mouseout', function (event) {
      var row = nodeRowOf(event.target);
      if (row === -1 || nodeRowOf(event.relatedTarget) === row) { return; }
      highlight(-1);
      card.hidden = true;
    });
    svg.addEventListener('click', function (event) {
      var row = nodeRowOf(event.target);
      if (row === -1) { return; }
      togglePin(nodes[row].key);
      if (!card.hidden) { showCard(row); }
    });
    var nodeSlider = document.getElementById('node-threshold');
    var edgeSlider = document.getElementById('edge-threshold');
    nodeSlider.value = state.nodeThreshold;
    edgeSlider.value = state.edgeThreshold;
    nodeSlider.addEventListener('input', function () {
      state.nodeThreshold = Number(nodeSlider.value);
      applyFilters();
    });
    edgeSlider.addEventListener('input', function () {
      state.edgeThreshold = Number(edgeSlider.value);
      applyFilters();
    });
    document.getElementById('copy-pinned').addEventListener('click', copyCommand);
    document.getElementById('clear-pinned').addEventListener('click', function () {
      setPinned([]);
    });
    var pending = false;
    window.addEventListener('resize', function () {
      if (pending) { return; }
      pending = true;
      window.requestAnimationFrame(function () { pending = false; layout(); });
    });
  }

  function start() {
    svg.appendChild(gridLayer);
    svg.appendChild(edgeLayer);
    svg.appendChild(nodeLayer);
    svg.appendChild(labelLayer);
    buildHeader();
    buildGroups();
    buildNodes();
    buildEdges();
    buildLegend();
    wire();
    layout();
    setPinned(data.pinned);
  }

  window.circuitView = {
    visibleNodes: visibleNodes,
    visibleEdges: visibleEdges,
    pinned: function () { return state.pinned.slice(); },
    pin: function (key) { if (state.pinned.indexOf(key) === -1) { togglePin(key); } },
    unpin: function (key) { if (state.pinned.indexOf(key) !== -1) { togglePin(key); } },
    command: command,
    setNodeThreshold: function (value) {
      state.nodeThreshold = Number(value);
      document.getElementById('node-threshold').value = value;
      applyFilters();
    },
    setEdgeThreshold: function (value) {
      state.edgeThreshold = Number(value);
      document.getElementById('edge-threshold').value = value;
      applyFilters();
    }
  };

  start();
}());
