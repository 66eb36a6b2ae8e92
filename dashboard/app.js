// The dashboard's only script (served as /app.js; no library, no external request): every
// element with data-live="URL" is refreshed from that URL of this server every 1.5 s.
// - /api/curve/KEY answers JSON {html, points, published}: the figures are replaced, and
//   `data-points` tells how many logged steps they show; polling stops once the entry is
//   published (the curve is then final).
// - any other URL answers HTML (data-live on a <div>) or text (on a <pre>).
"use strict";

const PERIOD_MS = 1500;

async function refresh(el) {
  const url = el.dataset.live;
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) return true;
  if (url.startsWith("/api/curve/")) {
    const c = await res.json();
    if (String(c.points) !== el.dataset.points) {
      el.innerHTML = c.html;
      el.dataset.points = String(c.points);
    }
    el.dataset.published = String(c.published);
    return !c.published;
  }
  const text = await res.text();
  if (el.tagName === "PRE") {
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
    if (el.textContent !== text) el.textContent = text;
    if (atEnd) el.scrollTop = el.scrollHeight; // follow the tail unless scrolled up
  } else if (el.innerHTML !== text) el.innerHTML = text;
  return true;
}

function watch(el) {
  const tick = async () => {
    let again = true;
    try {
      again = await refresh(el);
    } catch (_) {
      // The server went away (kme ui stopped): try again later, quietly.
    }
    if (again) setTimeout(tick, PERIOD_MS);
  };
  tick();
}

document.querySelectorAll("[data-live]").forEach(watch);
