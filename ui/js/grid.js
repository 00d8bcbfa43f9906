// A virtualized thumbnail grid: only the rows in view (plus a margin) exist in the DOM, so 100k
// results scroll as smoothly as 100. Keyboard: the grid is one tab stop; arrows, Home/End and
// PageUp/PageDown move the active photo, Enter opens it.

import { imageUrl } from './api.js';

const MIN_CELL = 150; // px, smallest cell width
const GAP = 6;
const OVERSCAN = 2; // rows rendered above and below the view

export class VirtualGrid {
  /** @param {HTMLElement} el the scrolling container; @param {(item, index) => void} onOpen */
  constructor(el, onOpen) {
    this.el = el;
    this.sizer = el.querySelector('.grid-sizer');
    this.onOpen = onOpen;
    this.items = [];
    this.nodes = new Map(); // index -> element
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
      this.setActive(i, false);
      this.onOpen(this.items[i], i);
    });
  }

  setItems(items) {
    this.items = items;
    this.active = 0;
    for (const n of this.nodes.values()) n.remove();
    this.nodes.clear();
    this.el.scrollTop = 0;
    this.el.dataset.count = String(items.length);
    this.layout();
  }

  layout() {
    const width = this.el.clientWidth;
    if (!width) return;
    this.cols = Math.max(1, Math.floor((width + GAP) / (MIN_CELL + GAP)));
    this.size = Math.floor((width - GAP * (this.cols - 1)) / this.cols);
    const rows = Math.ceil(this.items.length / this.cols);
    this.sizer.style.height = `${Math.max(0, rows * (this.size + GAP) - GAP)}px`;
    for (const [i, n] of this.nodes) this.place(n, i);
    this.render();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  place(node, i) {
    const row = Math.floor(i / this.cols);
    const col = i % this.cols;
    node.style.width = `${this.size}px`;
    node.style.height = `${this.size}px`;
    node.style.transform = `translate(${col * (this.size + GAP)}px, ${row * (this.size + GAP)}px)`;
  }

  render() {
    const step = this.size + GAP;
    const first = Math.max(0, Math.floor(this.el.scrollTop / step) - OVERSCAN) * this.cols;
    const last = Math.min(
      this.items.length,
      (Math.ceil((this.el.scrollTop + this.el.clientHeight) / step) + OVERSCAN) * this.cols,
    );
    for (const [i, n] of this.nodes) {
      if (i < first || i >= last) {
        n.remove();
        this.nodes.delete(i);
      }
    }
    for (let i = first; i < last; i++) {
      if (!this.nodes.has(i)) {
        const n = this.cell(this.items[i], i);
        this.place(n, i);
        this.el.appendChild(n);
        this.nodes.set(i, n);
      }
    }
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
    n.title = `${name}${item.caption ? ' — ' + item.caption : ''}\nscore ${item.score.toFixed(3)}`;
    const img = document.createElement('img');
    img.loading = 'lazy';
    img.decoding = 'async';
    img.alt = '';
    img.src = imageUrl(item.path, 'thumb');
    n.appendChild(img);
    const s = document.createElement('span');
    s.className = 'score';
    s.textContent = item.score.toFixed(2);
    n.appendChild(s);
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
      const top = Math.floor(i / this.cols) * step;
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
    else if (e.key === 'Enter' || e.key === ' ') this.onOpen(this.items[this.active], this.active);
    else return;
    e.preventDefault();
  }
}
