/* Graycat console: small canvas charts (lines and bars), drawn again whenever their data changes. */
"use strict";

window.GraycatCharts = (() => {
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  /** A canvas sized to its box at the screen's pixel ratio; returns its context and size in CSS pixels. */
  function prepare(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 300;
    const height = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }

  /** A round upper bound for the y axis. */
  function niceMax(value) {
    if (value <= 1) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  /** Axes, grid and legend; returns the plot area. */
  function frame(ctx, width, height, top, series, labels) {
    const muted = css("--muted"), line = css("--line");
    ctx.font = "12px system-ui, sans-serif";
    const ticks = [0, 0.5, 1].map((f) => [f, String(Math.round(top * f * 10) / 10)]);
    const left = 8 + Math.max(...ticks.map(([, t]) => ctx.measureText(t).width)) + 6;
    const right = width - 8, y0 = 22, y1 = height - 20;
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    ctx.fillStyle = muted;
    ctx.textBaseline = "middle";
    for (const [f, text] of ticks) {
      const y = Math.round(y1 - (y1 - y0) * f) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(text, left - 6, y);
    }
    ctx.textBaseline = "alphabetic";
    ctx.textAlign = "left";
    ctx.fillText(labels[0], left, height - 4);
    ctx.textAlign = "right";
    ctx.fillText(labels[1], right, height - 4);
    let x = left;
    ctx.textAlign = "left";
    for (const s of series) {
      ctx.fillStyle = css(s.color);
      ctx.fillRect(x, 6, 10, 10);
      ctx.fillStyle = css("--text");
      ctx.fillText(s.label, x + 14, 15);
      x += ctx.measureText(s.label).width + 28;
    }
    return { left, right, y0, y1 };
  }

  /** Lines over `points` slots (the newest at the right); series: {label, color: a CSS variable, values}. */
  function line(canvas, series, points, labels) {
    const { ctx, width, height } = prepare(canvas);
    const top = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
    const area = frame(ctx, width, height, top, series, labels);
    const step = (area.right - area.left) / Math.max(1, points - 1);
    for (const s of series) {
      ctx.strokeStyle = css(s.color);
      ctx.lineWidth = 2;
      ctx.beginPath();
      const offset = points - s.values.length;
      s.values.forEach((v, i) => {
        const px = area.left + (offset + i) * step, py = area.y1 - (area.y1 - area.y0) * (v / top);
        if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
    }
  }

  /** Side-by-side bars per slot (the newest at the right). */
  function bars(canvas, series, points, labels) {
    const { ctx, width, height } = prepare(canvas);
    const top = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
    const area = frame(ctx, width, height, top, series, labels);
    const slot = (area.right - area.left) / points;
    const bar = Math.max(1, (slot - 1) / series.length);
    series.forEach((s, k) => {
      ctx.fillStyle = css(s.color);
      const offset = points - s.values.length;
      s.values.forEach((v, i) => {
        const h = (area.y1 - area.y0) * (v / top);
        ctx.fillRect(area.left + (offset + i) * slot + k * bar, area.y1 - h, bar, h);
      });
    });
  }

  return { line, bars };
})();
