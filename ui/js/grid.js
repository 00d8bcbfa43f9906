// A virtualized thumbnail grid: only the rows in view (plus a margin) exist in the DOM, so 100k
// results scroll as smoothly as 100. Keyboard: the grid is one tab stop; arrows, Home/End and
// PageUp/PageDown move the active photo, Enter opens it.
// As a timeline it shows month sections with headers, and items may arrive a page at a time: a
// missing item is drawn as a placeholder and asked for through `loader(index)`.

import { imageUrl } from './api.js';

const MIN_CELL = 150; // px, smallest cell width
const GAP = 6;
const OVERSCAN = 2; // rows rendered above and below the view
const HEADER = 40; // px, a month header

export class VirtualGrid {
  /** @param {HTMLElement} el the scrolling container; @param {(item, index) => void} onOpen */
  constructor(el, onOpen) {
    this.el = el;
    this.sizer = el.querySelector('.grid-sizer');
    this.onOpen = onOpen;
    this.items = [];
    this.sections = null; // [{ key, label, start, count, top, rows }] in a timeline
    this.loader = null;
    this.nodes = new Map(); // index -> element
    this.headers = new Map(); // section key -> element
    this.active = 0;
    this.cols = 1;
    this.size = MIN_CELL;
    this.frame = 0;
    el.addEventListener('scroll', () => this.schedule());
    new ResizeObserver(() => this.layout()).observe(el);
    el.addEventListener('keydown', (e) => this.key(e));
    el.addEventListener('click', (e) => {
      const cell = e.target.closest('.cell');
      if (!cell) return;
      const i = Number(cell.dataset.index);
      if (!this.items[i]) return;
      this.setActive(i, false);
      this.onOpen(this.items[i], i);
    });
  }

  /**
   * @param items the results (a timeline's may have holes, filled later with `filled()`)
   * @param sections month sections `{ key, label, count }` in order, or null for a plain grid
   * @param loader called with the index of a missing item in view
   */
  setItems(items, sections = null, loader = null) {
    this.items = items;
    this.loader = loader;
    let start = 0;
    this.sections = sections && sections.map((s) => {
      const out = { ...s, start, top: 0, rows: 0 };
      start += s.count;
      return out;
    });
    this.active = 0;
    for (const n of this.nodes.values()) n.remove();
    for (const n of this.headers.values()) n.remove();
    this.nodes.clear();
    this.headers.clear();
    this.el.scrollTop = 0;
    this.el.dataset.count = String(items.length);
    this.layout();
  }

  /** Items arrived for indexes that were placeholders: draw them. */
  filled() {
    for (const [i, n] of this.nodes) {
      if (n.dataset.placeholder && this.items[i]) {
        n.remove();
        this.nodes.delete(i);
      }
    }
    this.render();
  }

  layout() {
    const width = this.el.clientWidth;
    if (!width) return;
    this.cols = Math.max(1, Math.floor((width + GAP) / (MIN_CELL + GAP)));
    this.size = Math.floor((width - GAP * (this.cols - 1)) / this.cols);
    const step = this.size + GAP;
    let height;
    if (this.sections) {
      let top = 0;
      for (const s of this.sections) {
        s.top = top;
        s.rows = Math.ceil(s.count / this.cols);
        top += HEADER + s.rows * step;
      }
      height = top;
    } else {
      height = Math.ceil(this.items.length / this.cols) * step - GAP;
    }
    this.sizer.style.height = `${Math.max(0, height)}px`;
    for (const [i, n] of this.nodes) this.place(n, i);
    for (const n of this.headers.values()) n.remove();
    this.headers.clear();
    this.render();
  }

  /** The section holding item `i` (binary search). */
  sectionOf(i) {
    const s = this.sections;
    let lo = 0;
    let hi = s.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid].start <= i) lo = mid;
      else hi = mid - 1;
    }
    return s[lo];
  }

  /** Top-left corner of item `i`. */
  pos(i) {
    const step = this.size + GAP;
    if (!this.sections) {
      return [(i % this.cols) * step, Math.floor(i / this.cols) * step];
    }
    const s = this.sectionOf(i);
    const local = i - s.start;
    return [(local % this.cols) * step, s.top + HEADER + Math.floor(local / this.cols) * step];
  }

  /** Scroll so the section `key` starts at the top of the view. */
  scrollToSection(key) {
    const s = this.sections && this.sections.find((x) => x.key === key);
    if (!s) return;
    this.el.scrollTop = s.top;
    this.setActive(s.start, false);
    this.render();
  }

  /** The section at the top of the view (its key), in a timeline. */
  currentSection() {
    if (!this.sections || !this.sections.length) return null;
    const y = this.el.scrollTop + 1;
    let cur = this.sections[0];
    for (const s of this.sections) {
      if (s.top <= y) cur = s;
      else break;
    }
    return cur.key;
  }

  /** Index ranges [first, last) of items within the view (plus a margin). */
  visibleRanges() {
    const step = this.size + GAP;
    const top = this.el.scrollTop - OVERSCAN * step;
    const bottom = this.el.scrollTop + this.el.clientHeight + OVERSCAN * step;
    if (!this.sections) {
      const first = Math.max(0, Math.floor(this.el.scrollTop / step) - OVERSCAN) * this.cols;
      const last = Math.min(
        this.items.length,
        (Math.ceil((this.el.scrollTop + this.el.clientHeight) / step) + OVERSCAN) * this.cols,
      );
      return { ranges: [[first, last]], sections: [] };
    }
    const ranges = [];
    const sections = [];
    for (const s of this.sections) {
      const end = s.top + HEADER + s.rows * step;
      if (end < top) continue;
      if (s.top > bottom) break;
      sections.push(s);
      const r0 = Math.max(0, Math.floor((top - s.top - HEADER) / step));
      const r1 = Math.min(s.rows, Math.ceil((bottom - s.top - HEADER) / step));
      if (r1 > r0) {
        ranges.push([s.start + r0 * this.cols, Math.min(s.start + s.count, s.start + r1 * this.cols)]);
      }
    }
    return { ranges, sections };
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  place(node, i) {
    const [x, y] = this.pos(i);
    node.style.width = `${this.size}px`;
    node.style.height = `${this.size}px`;
    node.style.transform = `translate(${x}px, ${y}px)`;
  }

  render() {
    const { ranges, sections } = this.visibleRanges();
    const shown = (i) => ranges.some(([a, b]) => i >= a && i < b);
    for (const [i, n] of this.nodes) {
      if (!shown(i)) {
        n.remove();
        this.nodes.delete(i);
      }
    }
    const keys = new Set(sections.map((s) => s.key));
    for (const [k, n] of this.headers) {
      if (!keys.has(k)) {
        n.remove();
        this.headers.delete(k);
      }
    }
    for (const s of sections) {
      if (this.headers.has(s.key)) continue;
      const h = document.createElement('h3');
      h.className = 'month-header';
      h.dataset.month = s.key;
      h.textContent = `${s.label} · ${s.count}`;
      h.style.transform = `translate(0px, ${s.top}px)`;
      this.el.appendChild(h);
      this.headers.set(s.key, h);
    }
    for (const [first, last] of ranges) {
      for (let i = first; i < last; i++) {
        if (this.nodes.has(i)) continue;
        const item = this.items[i];
        const n = item ? this.cell(item, i) : this.placeholder(i);
        this.place(n, i);
        this.el.appendChild(n);
        this.nodes.set(i, n);
      }
    }
    if (this.sections) this.el.dataset.section = this.currentSection() || '';
  }

  placeholder(i) {
    const n = document.createElement('div');
    n.className = 'cell placeholder';
    n.dataset.index = String(i);
    n.dataset.placeholder = 'true';
    if (this.loader) this.loader(i);
    return n;
  }

  cell(item, i) {
    const n = document.createElement('div');
    n.className = 'cell' + (i === this.active ? ' active' : '');
    n.id = `cell-${i}`;
    n.setAttribute('role', 'option');
    n.setAttribute('aria-selected', String(i === this.active));
    n.dataset.index = String(i);
    n.dataset.path = item.path;
    const name = item.path.split(/[\\/]/).pop();
    n.setAttribute('aria-label', item.caption ? `${name}: ${item.caption}` : name);
    const timeline = !!this.sections;
    n.dataset.date = item.date || '';
    n.title = `${name}${item.caption ? ' — ' + item.caption : ''}\n` +
      (timeline ? item.date.replace('T', ' ') : `score ${item.score.toFixed(3)}`);
    const img = document.createElement('img');
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = '';
    img.src = imageUrl(item.path, 'thumb');
    n.appendChild(img);
    if (!timeline) {
      const s = document.createElement('span');
      s.className = 'score';
      s.textContent = item.score.toFixed(2);
      n.appendChild(s);
    }
    return n;
  }

  setActive(i, scroll = true) {
    if (!this.items.length) return;
    i = Math.max(0, Math.min(this.items.length - 1, i));
    const old = this.nodes.get(this.active);
    if (old) {
      old.classList.remove('active');
      old.setAttribute('aria-selected', 'false');
    }
    this.active = i;
    if (scroll) {
      const step = this.size + GAP;
      const top = this.pos(i)[1];
      if (top < this.el.scrollTop) this.el.scrollTop = top;
      else if (top + step > this.el.scrollTop + this.el.clientHeight) {
        this.el.scrollTop = top + step - this.el.clientHeight;
      }
      this.render();
    }
    const n = this.nodes.get(i);
    if (n) {
      n.classList.add('active');
      n.setAttribute('aria-selected', 'true');
      this.el.setAttribute('aria-activedescendant', n.id);
    }
  }

  key(e) {
    if (!this.items.length) return;
    const page = Math.max(1, Math.floor(this.el.clientHeight / (this.size + GAP))) * this.cols;
    const moves = {
      ArrowRight: 1, ArrowLeft: -1, ArrowDown: this.cols, ArrowUp: -this.cols,
      PageDown: page, PageUp: -page,
    };
    if (e.key in moves) this.setActive(this.active + moves[e.key]);
    else if (e.key === 'Home') this.setActive(0);
    else if (e.key === 'End') this.setActive(this.items.length - 1);
    else if ((e.key === 'Enter' || e.key === ' ') && this.items[this.active]) {
      this.onOpen(this.items[this.active], this.active);
    }
    else return;
    e.preventDefault();
  }
}
