// Shoebox UI: views (welcome, search, folders, settings, sort), the photo view and drag-in results.
// Every action is a command; engine events (activity, models, library-changed, drop-*) update views.

import { call, on, imageUrl, inApp, toError } from './api.js';
import { VirtualGrid } from './grid.js';

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k in n) n[k] = v;
    else n.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) n.append(k);
  return n;
};

const state = {
  view: null,
  status: null,
  like: [], // paths searched by ("find similar")
  results: [],
  photoIndex: -1,
  searchSeq: 0,
  modalReturn: null,
};

// ---------- errors: always readable, never a blank screen ----------

function showError(e, context = '') {
  const err = toError(e);
  const box = el('div', { className: 'error' },
    el('span', {}, context ? `${context}: ${err.message}` : err.message),
    el('span', { className: 'code' }, err.code),
    el('button', { type: 'button', textContent: 'Dismiss', onclick: () => box.remove() }));
  $('#errors').append(box);
  while ($('#errors').children.length > 4) $('#errors').firstElementChild.remove();
}
window.addEventListener('error', (e) => showError({ code: 'ui', message: e.message }));
window.addEventListener('unhandledrejection', (e) => showError(e.reason));

// ---------- views ----------

function showView(name) {
  state.view = name;
  for (const v of ['welcome', 'search', 'folders', 'settings', 'classify', 'duplicates']) {
    $(`#view-${v}`).hidden = v !== name;
  }
  for (const b of document.querySelectorAll('.navbtn')) {
    if (b.dataset.view === name || (name === 'welcome' && b.dataset.view === 'search')) {
      b.setAttribute('aria-current', 'page');
    } else b.removeAttribute('aria-current');
  }
  document.body.dataset.view = name;
  if (name === 'folders') renderFolders();
  if (name === 'settings') loadSettings();
}

function goSearch() {
  const empty = state.status && state.status.folders.length === 0;
  showView(empty ? 'welcome' : 'search');
  // The library may have changed while another view was shown.
  if (!empty) scheduleSearch(0);
}

// ---------- status and activity ----------

async function refreshStatus() {
  try {
    state.status = await call('status');
  } catch (e) {
    showError(e, 'Reading the library');
    return;
  }
  const s = state.status;
  document.body.dataset.indexed = String(s.photos.indexed);
  document.body.dataset.folders = String(s.folders.length);
  const sel = $('#f-folder');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '', textContent: 'All folders' }),
    ...s.folders.map((f) => el('option', { value: f.path, textContent: f.path })));
  sel.value = keep;
  if (state.view === 'welcome' && s.folders.length) showView('search');
  if (state.view === 'search' && !s.folders.length) showView('welcome');
  if (state.view === 'folders') renderFolders();
  refreshTags();
  refreshPlaces();
}

// The Places facet: countries with their photo counts, each followed by its towns.
async function refreshPlaces() {
  let places;
  try { places = await call('places'); } catch { return; }
  const sel = $('#f-place');
  const keep = sel.value;
  const countries = new Map();
  for (const p of places) {
    const c = countries.get(p.country) || { count: 0, towns: new Map() };
    c.count += p.count;
    c.towns.set(p.city, (c.towns.get(p.city) || 0) + p.count);
    countries.set(p.country, c);
  }
  const opts = [el('option', { value: '', textContent: 'Anywhere' })];
  for (const [name, c] of [...countries].sort((a, b) => b[1].count - a[1].count)) {
    opts.push(el('option', { value: name, textContent: `${name} (${c.count})`, dataset: { kind: 'country' } }));
    for (const [town, n] of [...c.towns].sort((a, b) => b[1] - a[1])) {
      opts.push(el('option', { value: town, textContent: `\u2003${town} (${n})`, dataset: { kind: 'city' } }));
    }
  }
  sel.replaceChildren(...opts);
  sel.value = keep;
  $('#f-place-label').hidden = places.length === 0;
}

async function refreshTags() {
  try {
    const tags = await call('tags');
    $('#f-tag-label').hidden = tags.length === 0;
    $('#tag-list').replaceChildren(...tags.slice(0, 500).map((t) => el('option', { value: t.tag })));
  } catch { /* tags are optional */ }
}

const fmtSecs = (s) => (s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

let models = { clip: 'loading' };
let activity = { state: 'starting' };

function renderActivity() {
  const text = $('#activity-text');
  const bar = $('#activity-progress');
  const box = $('#activity');
  box.dataset.state = activity.state;
  box.dataset.models = models.clip;
  bar.hidden = true;
  const s = state.status;
  const photos = s ? `${s.photos.indexed} photos indexed` : '';
  let msg;
  switch (activity.state) {
    case 'indexing': {
      const p = activity.progress;
      if (p && p.total) {
        bar.hidden = false;
        bar.max = p.total;
        bar.value = p.done;
        msg = `Indexing ${p.done} of ${p.total}` +
          (p.rate ? ` · ${p.rate.toFixed(1)} photos/s` : '') +
          (p.etaS != null && p.done < p.total ? ` · about ${fmtSecs(p.etaS)} left` : '') +
          (p.failed ? ` · ${p.failed} could not be read` : '');
      } else msg = 'Looking for new and changed photos…';
      break;
    }
    case 'watching': {
      msg = `Up to date · ${photos} · watching for changes`;
      const c = activity.lastChange;
      if (c) {
        const parts = [[c.added, 'new'], [c.changed, 'changed'], [c.moved, 'moved'], [c.removed, 'removed'],
          [c.failed, 'unreadable']].filter(([n]) => n).map(([n, w]) => `${n} ${w}`);
        const at = new Date(c.at * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
        if (parts.length) msg += ` · last change ${at}: ${parts.join(', ')}`;
      }
      break;
    }
    case 'idle': msg = 'No folders yet'; break;
    case 'error': msg = `Indexing stopped: ${activity.error ? activity.error.message : 'unknown error'}`; break;
    case 'stopped': msg = photos; break;
    default: msg = 'Starting…';
  }
  renderDownload();
  if (models.clip === 'loading') msg += ' · loading the search model…';
  if (models.clip === 'error') msg += ` · the search model could not be loaded: ${models.error.message}`;
  text.textContent = msg;
}

const fmtMB = (b) => `${(b / 1048576).toFixed(b < 10485760 ? 1 : 0)} MB`;

// A model file coming from the Hugging Face hub (first use of a model): name, percent, bar.
function renderDownload() {
  const box = $('#download');
  const d = models.download;
  box.hidden = !d;
  if (!d) return;
  box.dataset.model = d.model;
  box.dataset.file = d.file;
  box.dataset.done = d.done;
  box.dataset.total = d.total;
  box.dataset.finished = d.finished;
  const bar = $('#download-progress');
  bar.hidden = d.finished;
  bar.max = d.total || 1;
  bar.value = d.done;
  const pct = d.total ? Math.floor((100 * d.done) / d.total) : 0;
  $('#download-text').textContent = d.finished
    ? `Downloaded ${d.model} (${d.file}, ${fmtMB(d.total)})`
    : `Downloading ${d.model}: ${d.file} ${pct} % (${fmtMB(d.done)} of ${fmtMB(d.total)})`;
}

// ---------- search ----------

function searchArgs() {
  const q = $('#q').value.trim();
  const num = $('#f-min').value;
  return {
    query: q || null,
    like: state.like,
    folder: $('#f-folder').value || null,
    after: $('#f-after').value.trim() || null,
    before: $('#f-before').value.trim() || null,
    types: $('#f-type').value ? [$('#f-type').value] : [],
    tags: $('#f-tag').value.trim() ? [$('#f-tag').value.trim()] : [],
    places: $('#f-place').value ? [$('#f-place').value] : [],
    minScore: num === '' ? null : Number(num),
    limit: Number($('#f-limit').value),
    sort: $('#f-sort').value,
    mode: $('#f-mode').value,
  };
}

let debounce = 0;
function scheduleSearch(delay = 180) {
  clearTimeout(debounce);
  debounce = setTimeout(runSearch, delay);
}

// ---------- timeline (an empty search box) ----------

const TIMELINE_PAGE = 300;

const monthLabel = (key) => {
  const [y, m] = key.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });
};

// The library newest first: month sections, a year/month scrubber, pages fetched as they scroll in.
async function runTimeline(args) {
  const grid = $('#grid');
  const seq = ++state.searchSeq;
  grid.setAttribute('aria-busy', 'true');
  try {
    const t = await call('timeline', { args, offset: 0, limit: TIMELINE_PAGE });
    if (seq !== state.searchSeq) return;
    const items = new Array(t.total);
    t.results.forEach((h, i) => { items[i] = h; });
    const asked = new Set([0]);
    const loader = (i) => {
      const page = Math.floor(i / TIMELINE_PAGE);
      if (asked.has(page)) return;
      asked.add(page);
      call('timeline', { args, offset: page * TIMELINE_PAGE, limit: TIMELINE_PAGE }).then((p) => {
        if (seq !== state.searchSeq) return;
        p.results.forEach((h, k) => { items[p.offset + k] = h; });
        gridView.filled();
      }).catch((e) => { asked.delete(page); showError(e, 'Loading photos'); });
    };
    state.results = items;
    grid.dataset.mode = 'timeline';
    grid.dataset.query = '';
    grid.dataset.like = '';
    grid.dataset.placeFilter = '';
    gridView.setItems(items, t.months.map((m) => ({ key: m.month, label: monthLabel(m.month), count: m.count })), loader);
    renderScrubber(t.months);
    $('#summary').textContent = t.total
      ? `${t.total} photo${t.total === 1 ? '' : 's'} · newest first · type to search`
      : (state.status && state.status.photos.indexed === 0
        ? 'No photos are indexed yet: add a folder and wait for indexing.'
        : 'No photos match these filters.');
  } catch (e) {
    if (seq === state.searchSeq) showError(e, 'Timeline');
  } finally {
    if (seq === state.searchSeq) grid.removeAttribute('aria-busy');
  }
}

function renderScrubber(months) {
  const nav = $('#scrubber');
  const years = new Map();
  for (const m of months) {
    const y = m.month.slice(0, 4);
    if (!years.has(y)) years.set(y, []);
    years.get(y).push(m);
  }
  const jump = (key) => { gridView.scrollToSection(key); $('#grid').focus(); };
  nav.replaceChildren(...[...years].map(([y, ms]) => el('div', { className: 'year' },
    el('button', { type: 'button', className: 'year-btn', textContent: y, dataset: { month: ms[0].month },
      title: `Jump to ${monthLabel(ms[0].month)}`, onclick: () => jump(ms[0].month) }),
    ...ms.map((m) => el('button', {
      type: 'button', className: 'month-btn', dataset: { month: m.month },
      textContent: monthLabel(m.month).split(' ')[0].slice(0, 3),
      title: `${monthLabel(m.month)} · ${m.count} photo${m.count === 1 ? '' : 's'}`,
      onclick: () => jump(m.month),
    })))));
  nav.hidden = months.length === 0;
  markScrubber();
}

function markScrubber() {
  const cur = $('#grid').dataset.section;
  for (const b of document.querySelectorAll('#scrubber .month-btn')) {
    b.classList.toggle('current', b.dataset.month === cur);
  }
}

async function runSearch() {
  const args = searchArgs();
  const grid = $('#grid');
  if (!args.query && !args.like.length) {
    await runTimeline(args);
    return;
  }
  $('#scrubber').hidden = true;
  if (state.view !== 'search') showView('search');
  const seq = ++state.searchSeq;
  grid.setAttribute('aria-busy', 'true');
  try {
    const r = await call('search', { args });
    if (seq !== state.searchSeq) return; // a newer search is on its way
    state.results = r.results;
    gridView.setItems(r.results, r.mode === 'timeline' ? timelineSections(r.results) : null);
    grid.dataset.mode = r.mode;
    grid.dataset.query = args.query || '';
    grid.dataset.like = args.like.join('\n');
    grid.dataset.placeFilter = r.place_filter.join('\n');
    const n = r.results.length;
    const where = r.place_filter.length ? ` · in ${r.place_filter.join(', ')}` : '';
    $('#summary').textContent = n
      ? `${n} photo${n === 1 ? '' : 's'}${where} · ${Math.round(r.took_ms)} ms · ` +
        (r.mode === 'timeline' ? 'newest first' : `ranked by ${r.mode}`)
      : (state.status && state.status.photos.indexed === 0
        ? 'No photos are indexed yet: add a folder and wait for indexing.'
        : 'No matches. Try other words, or loosen the filters.');
  } catch (e) {
    if (seq === state.searchSeq) {
      $('#summary').textContent = '';
      showError(e, 'Search');
    }
  } finally {
    if (seq === state.searchSeq) grid.removeAttribute('aria-busy');
  }
}

// Month sections of results already newest first (a query that was only a place name).
function timelineSections(results) {
  const out = [];
  for (const h of results) {
    const key = h.date.slice(0, 7);
    if (out.length && out[out.length - 1].key === key) out[out.length - 1].count++;
    else out.push({ key, label: monthLabel(key), count: 1 });
  }
  return out;
}

function setLike(paths) {
  state.like = paths;
  const chip = $('#like-chip');
  chip.hidden = paths.length === 0;
  $('#like-label').textContent = paths.length
    ? `Similar to ${paths[0].split(/[\\/]/).pop()}`
    : '';
}

const gridView = new VirtualGrid($('#grid'), (item, i) => openPhoto(i));

// ---------- photo view ----------

function openModal(id) {
  if ($(id).hidden) state.modalReturn = document.activeElement;
  $(id).hidden = false;
}

function closeModal(id) {
  $(id).hidden = true;
  if (id === '#photo-view') $('#pv-img').removeAttribute('src');
  const back = state.modalReturn;
  state.modalReturn = null;
  if (back && document.contains(back)) back.focus();
  else $('#grid').focus();
}

async function openPhoto(index, list = state.results) {
  const item = list[index];
  if (!item) return;
  state.photoIndex = list === state.results ? index : -1;
  state.photoPath = item.path;
  openModal('#photo-view');
  const pv = $('#photo-view');
  pv.dataset.path = item.path;
  $('#pv-img').src = imageUrl(item.path, 'full');
  $('#pv-img').alt = item.caption || '';
  $('#pv-name').textContent = item.path.split(/[\\/]/).pop();
  $('#pv-path').textContent = item.path;
  for (const id of ['#pv-date', '#pv-place', '#pv-camera', '#pv-size', '#pv-caption']) $(id).textContent = '…';
  $('#pv-tags').replaceChildren();
  showPhotoText(null);
  $('#pv-similar').focus();
  try {
    const d = await call('photo', { path: item.path });
    if (state.photoPath !== item.path) return;
    const taken = d.taken_at ? d.taken_at.replace('T', ' ') : null;
    $('#pv-date').textContent = taken
      ? `${taken}${d.taken_offset ? ` (UTC${d.taken_offset})` : ''}`
      : `${d.date.replace('T', ' ')} (file time)`;
    const p = d.place;
    $('#pv-place').textContent = p
      ? [p.city, p.region !== p.city ? p.region : null, p.country].filter(Boolean).join(', ')
      : '—';
    $('#pv-place').title = p ? `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}` : '';
    $('#pv-camera').textContent = d.camera || '—';
    const w = d.width, h = d.height;
    const mb = d.sizeBytes ?? d.size_bytes;
    $('#pv-size').textContent = [w && h ? `${w} × ${h}` : null, mb ? (mb >= 1e6 ? `${(mb / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(mb / 1e3))} KB`) : null]
      .filter(Boolean).join(' · ') || '—';
    $('#pv-caption').textContent = d.caption || 'Not captioned yet';
    showPhotoText(d.text);
    $('#pv-tags').replaceChildren(...(d.tags.length
      ? d.tags.map((t) => el('button', {
        type: 'button', className: 'chip', textContent: t.tag, title: `${t.source} ${t.score.toFixed(2)} — search with this tag`,
        onclick: () => { $('#f-tag').value = t.tag; closeModal('#photo-view'); scheduleSearch(0); },
      }))
      : [el('span', { textContent: '—' })]));
  } catch (e) {
    // Dropped files are not library photos: show what we know.
    $('#pv-date').textContent = $('#pv-camera').textContent = $('#pv-size').textContent = '—';
    $('#pv-place').textContent = '—';
    $('#pv-caption').textContent = item.caption || '—';
    if (e.code !== 'invalid') showError(e, 'Photo details');
  }
}

// The words of the search box (quoted phrases as one), lower case, for highlighting.
function queryWords() {
  const q = $('#q').value.toLowerCase();
  const words = [];
  q.replace(/"([^"]*)"?|([^\s"]+)/g, (_, phrase, word) => {
    const w = (phrase ?? word).trim();
    if (w.length >= 2) words.push(w);
    return '';
  });
  return words;
}

// The photo's recognised text, with the search's words marked.
function showPhotoText(text) {
  const show = Boolean(text);
  $('#pv-text-label').hidden = $('#pv-text-box').hidden = !show;
  $('#pv-copied').textContent = '';
  const pre = $('#pv-text');
  pre.replaceChildren();
  if (!show) return;
  const words = queryWords().map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!words.length) { pre.textContent = text; return; }
  const re = new RegExp(`(${words.join('|')})`, 'giu');
  const parts = text.split(re);
  pre.replaceChildren(...parts.map((part, i) => (i % 2 === 1
    ? el('mark', { textContent: part })
    : document.createTextNode(part))));
}

$('#pv-copy-text').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText($('#pv-text').textContent);
    $('#pv-copied').textContent = 'Copied';
  } catch (e) {
    // No clipboard permission (some webviews): select it for Ctrl-C instead.
    const range = document.createRange();
    range.selectNodeContents($('#pv-text'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    $('#pv-copied').textContent = 'Selected: press Ctrl-C';
  }
});

function findSimilar(path) {
  closeModal('#photo-view');
  closeModal('#drop-view');
  $('#q').value = '';
  setLike([path]);
  showView('search');
  scheduleSearch(0);
  $('#grid').focus();
}

// ---------- drag-in ----------

function similarCell(hit, list, i) {
  const b = el('button', {
    type: 'button', className: 'cell', title: `${hit.path}\nscore ${hit.score.toFixed(3)}`,
    dataset: { path: hit.path }, onclick: () => openPhoto(i, list),
  }, el('img', { src: imageUrl(hit.path), alt: hit.path.split(/[\\/]/).pop(), loading: 'lazy' }),
  el('span', { className: 'score', textContent: hit.score.toFixed(2) }));
  return b;
}

function dropItem(path) {
  const id = `drop-${btoa(unescape(encodeURIComponent(path))).replace(/[^a-z0-9]/gi, '')}`;
  let item = document.getElementById(id);
  if (!item) {
    item = el('div', { className: 'drop-item', id, dataset: { path, state: 'pending' } },
      el('img', { alt: '' }),
      el('div', { className: 'drop-body' },
        el('h3', { textContent: path.split(/[\\/]/).pop() }),
        el('p', { className: 'drop-caption', textContent: 'Looking at it…' }),
        el('div', { className: 'similar' })));
    $('#dv-list').append(item);
  }
  return item;
}

on('drop-start', ({ paths }) => {
  $('#dv-list').replaceChildren();
  for (const p of paths) dropItem(p);
  openModal('#drop-view');
  $('#dv-close').focus();
});

on('drop-result', (r) => {
  let item = [...document.querySelectorAll('.drop-item')].find((n) => n.dataset.path === r.path);
  if (!item) {
    // The result carries the canonical path; the start event had the path as dropped.
    item = [...document.querySelectorAll('.drop-item[data-state="pending"]')]
      .find((n) => n.querySelector('h3').textContent === r.name) || dropItem(r.path);
  }
  item.dataset.path = r.path;
  item.dataset.state = r.error ? 'error' : 'done';
  const cap = item.querySelector('.drop-caption');
  if (r.error) {
    cap.textContent = `Could not use this file: ${r.error.message}`;
    return;
  }
  item.querySelector('img').src = imageUrl(r.path);
  cap.textContent = r.caption ? `“${r.caption.caption}”`
    : `No caption (${r.captionError ? r.captionError.message : 'no captioning model'})`;
  const list = r.similar;
  const sim = item.querySelector('.similar');
  sim.replaceChildren(...list.map((h, i) => similarCell(h, list, i)));
  item.querySelector('.drop-body').append(el('div', { className: 'actions' },
    el('button', { type: 'button', textContent: 'Find more like this', onclick: () => findSimilar(r.path) })));
  if (!list.length) sim.append(el('p', { className: 'hint', textContent: 'No similar photos in the library.' }));
});

on('drop-done', () => { $('#drop-view').dataset.done = 'true'; });
on('drag-hover', ({ active }) => { $('#drag-overlay').hidden = !active; });

// ---------- folders ----------

function renderFolders() {
  const s = state.status;
  if (!s) return;
  const p = s.photos;
  $('#counts').textContent = `${p.indexed} indexed · ${p.pending} waiting · ${p.failed} could not be read · ` +
    `${p.captioned} captioned · library ${s.library}`;
  const failures = s.failures || [];
  const under = (f, dir) => f.path === dir || f.path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  $('#folder-rows').replaceChildren(...s.folders.map((f) => {
    const n = failures.filter((x) => under(x, f.path)).length;
    const remove = el('button', { type: 'button', textContent: 'Remove' });
    remove.onclick = async () => {
      if (remove.dataset.confirm !== 'yes') {
        remove.dataset.confirm = 'yes';
        remove.textContent = 'Remove from Shoebox (files stay)?';
        return;
      }
      try {
        state.status = await call('remove_folder', { path: f.path });
        await refreshStatus();
      } catch (e) { showError(e, 'Removing the folder'); }
    };
    return el('tr', { dataset: { path: f.path } },
      el('td', { className: 'path', textContent: f.path }),
      el('td', { textContent: String(f.photos) }),
      el('td', { textContent: n ? String(n) : '—' }),
      el('td', {}, remove));
  }));
  if (!s.folders.length) {
    $('#folder-rows').append(el('tr', {}, el('td', { colSpan: 4, textContent: 'No folders yet.' })));
  }
  const box = $('#failures');
  box.replaceChildren();
  if (failures.length) {
    box.append(el('h3', { textContent: `${failures.length} files could not be read` }),
      el('ul', { className: 'failure-list' }, ...failures.slice(0, 1000).map((f) => el('li', {},
        el('span', { className: 'path', textContent: f.path }), ` — ${f.reason}`))));
  }
}

// Folders reach the app from the native folder dialog; a typed one the app has not been given yet is
// refused (`not_allowed`) until the user says yes to it in a native dialog, then the action is tried
// again. Resolves to `undefined` when the user said no.
async function withConsent(path, purpose, action) {
  try {
    return await action();
  } catch (e) {
    if (e.code !== 'not_allowed' || !path) throw e;
    if (!(await call('confirm_folder', { path, purpose }))) return undefined;
    return action();
  }
}

/** The native folder dialog for `purpose` ('library', 'sort' or 'dest'); null when cancelled. */
const pickFolderFor = (purpose) => call('pick_folder', { purpose });

async function addFolder(path) {
  if (!path) return;
  try {
    const status = await withConsent(path, 'library', () => call('add_folder', { path }));
    if (!status) return;
    state.status = status;
    await refreshStatus();
    showView('search');
    $('#q').focus();
  } catch (e) { showError(e, 'Adding the folder'); }
}

async function pickFolder() {
  try {
    const path = await pickFolderFor('library');
    if (path) await addFolder(path);
  } catch (e) { showError(e, 'Choosing a folder'); }
}

// ---------- settings ----------

async function loadSettings() {
  try {
    const st = await call('get_state');
    const s = st.settings;
    $('#s-library').textContent = st.library;
    $('#s-clip').value = s.clipModel;
    $('#s-caption').value = s.captionModel;
    $('#s-text').value = s.textModel;
    $('#s-query').value = s.queryModel;
    $('#s-device').value = s.device;
    $('#s-precision').value = s.precision;
    $('#s-captions').checked = s.backgroundCaptions;
    $('#s-raw').checked = s.rawSeparate;
    $('#s-ocr').value = s.ocr;
    $('#s-ocr-langs').value = s.ocrLangs;
  } catch (e) { showError(e, 'Reading the settings'); }
  loadModelMenu();
}

const KIND_LABEL = {
  'image-text': 'search (images and text)', query: 'queries in other languages',
  caption: 'captions', sentence: 'tags and caption search',
};

/** The model menu (datalists under the model fields, and the table) and this library's coverage. */
async function loadModelMenu() {
  try {
    const menu = await call('model_menu');
    for (const kind of Object.keys(KIND_LABEL)) {
      $(`#ml-${kind}`).replaceChildren(...menu.filter((m) => m.kind === kind)
        .map((m) => el('option', { value: m.id, label: m.note })));
    }
    $('#s-menu tbody').replaceChildren(...menu.map((m) => el('tr', { dataset: { id: m.id } },
      el('td', {}, el('code', { textContent: m.id }), m.cached ? ' (downloaded)' : ''),
      el('td', { textContent: KIND_LABEL[m.kind] || m.kind }),
      el('td', { textContent: m.languages }),
      el('td', { textContent: m.size_mb ? `${m.size_mb} MB` : '' }),
      el('td', { textContent: m.note }))));
  } catch (e) { showError(e, 'Reading the model menu'); }
  try {
    const st = await call('status');
    $('#s-coverage').replaceChildren(...(st.models || []).map((m) => el('li', { dataset: { id: m.id } },
      el('code', { textContent: m.id }),
      ` — ${m.embedded} of ${m.of} photos embedded`,
      m.id === st.search_model ? ' (searches answer from this one)' : '')));
  } catch (e) { showError(e, 'Reading the library status'); }
}

$('#settings-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#s-saved').textContent = '';
  try {
    await call('save_settings', {
      settings: {
        clipModel: $('#s-clip').value, captionModel: $('#s-caption').value, textModel: $('#s-text').value,
        queryModel: $('#s-query').value,
        device: $('#s-device').value, precision: $('#s-precision').value, backgroundCaptions: $('#s-captions').checked,
        rawSeparate: $('#s-raw').checked, ocr: $('#s-ocr').value, ocrLangs: $('#s-ocr-langs').value,
      },
    });
    $('#s-saved').textContent = 'Saved. Models reload in the background.';
  } catch (err) { showError(err, 'Saving the settings'); }
});

// ---------- wiring ----------

// ---------- sort (zero-shot classification of a folder) ----------

function renderClassify(preview) {
  const groups = $('#c-groups');
  groups.replaceChildren();
  const total = preview.groups.reduce((n, g) => n + g.files.length, 0);
  $('#c-status').textContent = `${total} images in ${preview.groups.length} groups (${preview.seconds.toFixed(1)} s)`
    + (preview.failures.length ? `; ${preview.failures.length} could not be read` : '');
  for (const g of preview.groups) {
    const cells = g.files.map((f) => el('figure', {
      className: 'cell', title: `${f.path}\nconfidence ${f.confidence.toFixed(2)}`, dataset: { path: f.path },
    }, el('img', { src: imageUrl(f.path), alt: f.name, loading: 'lazy' }),
    el('span', { className: 'score', textContent: f.confidence.toFixed(2) })));
    groups.append(el('section', { className: 'c-group', dataset: { label: g.label } },
      el('h3', { textContent: `${g.label} (${g.files.length})` }),
      el('div', { className: 'similar' }, ...cells)));
  }
  for (const [path, reason] of preview.failures) {
    groups.append(el('p', { className: 'hint', textContent: `${path}: ${reason}` }));
  }
  $('#c-actions').hidden = total === 0;
}

async function classifyPreview() {
  $('#c-status').textContent = 'Looking at the images…';
  $('#c-groups').replaceChildren();
  $('#c-actions').hidden = true;
  const folder = $('#c-folder').value.trim();
  try {
    const preview = await withConsent(folder, 'sort',
      () => call('classify_preview', { folder, labels: $('#c-labels').value }));
    if (preview) renderClassify(preview);
    else $('#c-status').textContent = 'Not sorted: that folder was not allowed.';
  } catch (e) { $('#c-status').textContent = ''; showError(e, 'Sorting'); }
}

async function classifyApply(action) {
  try {
    const dest = $('#c-dest').value.trim() || null;
    const r = await withConsent(dest, 'dest', () => call('classify_apply', { action, dest }));
    if (!r) return;
    $('#c-status').textContent = `${action === 'move' ? 'Moved' : 'Copied'} ${r.files} files into ${r.dest}`;
    $('#c-actions').hidden = false;
    $('#c-move').hidden = true;
    $('#c-copy').hidden = true;
    $('#c-undo').hidden = false;
    $('#c-undo').focus();
  } catch (e) { showError(e, 'Sorting'); }
}

async function classifyUndo() {
  try {
    const n = await call('classify_undo');
    $('#c-status').textContent = `Undone: ${n} files back where they were`;
    $('#c-undo').hidden = true;
    $('#c-move').hidden = false;
    $('#c-copy').hidden = false;
    $('#c-actions').hidden = true;
    $('#c-groups').replaceChildren();
  } catch (e) { showError(e, 'Undo'); }
}

// ---------- duplicates ----------

const baseName = (p) => p.split(/[\\/]/).pop();

async function findDuplicates() {
  $('#d-status').textContent = 'Looking for duplicates…';
  $('#d-groups').replaceChildren();
  $('#d-trash').hidden = true;
  try {
    state.dups = await call('duplicates', { threshold: null });
    renderDuplicates();
  } catch (e) { $('#d-status').textContent = ''; showError(e, 'Duplicates'); }
}

function renderDuplicates() {
  const r = state.dups;
  const box = $('#d-groups');
  box.replaceChildren();
  const extra = r.groups.reduce((n, g) => n + g.photos.length - 1, 0);
  $('#d-status').textContent = r.groups.length
    ? `${r.groups.length} group${r.groups.length === 1 ? '' : 's'} · ${extra} photo${extra === 1 ? '' : 's'} could go`
    : 'No duplicates found.';
  r.groups.forEach((g, gi) => {
    const photos = g.photos.map((p) => el('label', { className: 'd-photo', dataset: { path: p.path } },
      el('img', { src: imageUrl(p.path, 'thumb'), alt: baseName(p.path), loading: 'lazy' }),
      el('span', { className: 'd-name', textContent: baseName(p.path), title: p.path }),
      el('span', { className: 'd-meta', textContent: [p.width && p.height ? `${p.width} × ${p.height}` : null,
        p.size >= 1e6 ? `${(p.size / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(p.size / 1e3))} KB`,
        p.taken_at ? p.taken_at.replace('T', ' ') : null].filter(Boolean).join(' · ') }),
      el('span', { className: 'd-keep' },
        el('input', { type: 'radio', name: `keep-${gi}`, value: p.path, checked: p.keep }), ' Keep')));
    box.append(el('section', { className: 'd-group', dataset: { kind: g.kind, index: String(gi) } },
      el('h3', { textContent: `${g.kind === 'exact' ? 'Exact copies' : 'Near-duplicates'} (${g.photos.length})` }),
      el('div', { className: 'd-photos' }, ...photos),
      el('button', { type: 'button', className: 'd-trash-group', textContent: 'Trash the others',
        onclick: () => trashDuplicates([gi]) })));
  });
  $('#d-trash').hidden = r.groups.length === 0;
}

// Every photo of the given groups but the one whose Keep is checked.
function notKept(indexes) {
  const paths = [];
  for (const gi of indexes) {
    const keep = document.querySelector(`input[name="keep-${gi}"]:checked`);
    for (const p of state.dups.groups[gi].photos) if (!keep || p.path !== keep.value) paths.push(p.path);
  }
  return paths;
}

async function trashDuplicates(indexes) {
  const paths = notKept(indexes);
  if (!paths.length) return;
  try {
    const n = await call('trash_photos', { paths });
    state.dups.groups = state.dups.groups.filter((_, i) => !indexes.includes(i));
    renderDuplicates();
    $('#d-status').textContent = `Put ${n} photo${n === 1 ? '' : 's'} in the trash`;
    $('#d-undo').hidden = false;
    $('#d-undo').focus();
  } catch (e) { showError(e, 'Trashing duplicates'); }
}

async function undoTrash() {
  try {
    const n = await call('undo_trash');
    $('#d-status').textContent = `Undone: ${n} photo${n === 1 ? '' : 's'} back where they were`;
    $('#d-undo').hidden = true;
  } catch (e) { showError(e, 'Undo'); }
}

function wire() {
  $('#d-find').addEventListener('click', findDuplicates);
  $('#d-trash').addEventListener('click', () => trashDuplicates(state.dups.groups.map((_, i) => i)));
  $('#d-undo').addEventListener('click', undoTrash);
  $('#search-form').addEventListener('submit', (e) => { e.preventDefault(); scheduleSearch(0); });
  $('#q').addEventListener('input', () => scheduleSearch());
  $('#q').addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && state.results.length) { e.preventDefault(); $('#grid').focus(); gridView.setActive(0); }
  });
  $('#filters').addEventListener('input', () => scheduleSearch(250));
  $('#filters').addEventListener('change', () => scheduleSearch(0));
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#grid').addEventListener('scroll', () => requestAnimationFrame(markScrubber));
  $('#like-clear').addEventListener('click', () => { setLike([]); scheduleSearch(0); $('#q').focus(); });
  for (const b of document.querySelectorAll('.navbtn')) {
    b.addEventListener('click', () => (b.dataset.view === 'search' ? goSearch() : showView(b.dataset.view)));
  }
  $('#compare').addEventListener('click', async () => {
    try { await call('compare_files'); } catch (e) { showError(e, 'Comparing files'); }
  });
  $('#classify-form').addEventListener('submit', (e) => { e.preventDefault(); classifyPreview(); });
  $('#c-pick').addEventListener('click', async () => {
    try {
      const p = await pickFolderFor('sort');
      if (p) $('#c-folder').value = p;
    } catch (e) { showError(e, 'Choosing a folder'); }
  });
  $('#c-dest-pick').addEventListener('click', async () => {
    try {
      const p = await pickFolderFor('dest');
      if (p) $('#c-dest').value = p;
    } catch (e) { showError(e, 'Choosing a folder'); }
  });
  $('#c-move').addEventListener('click', () => classifyApply('move'));
  $('#c-copy').addEventListener('click', () => classifyApply('copy'));
  $('#c-undo').addEventListener('click', classifyUndo);
  $('#welcome-pick').addEventListener('click', pickFolder);
  $('#folders-pick').addEventListener('click', pickFolder);
  $('#welcome-form').addEventListener('submit', (e) => { e.preventDefault(); addFolder($('#welcome-path').value.trim()); });
  $('#folders-form').addEventListener('submit', (e) => { e.preventDefault(); addFolder($('#folders-path').value.trim()); });

  $('#pv-close').addEventListener('click', () => closeModal('#photo-view'));
  $('#pv-similar').addEventListener('click', () => findSimilar(state.photoPath));
  $('#pv-reveal').addEventListener('click', () => call('reveal', { path: state.photoPath }).catch((e) => showError(e, 'Show in folder')));
  $('#pv-open').addEventListener('click', () => call('open_photo', { path: state.photoPath }).catch((e) => showError(e, 'Open')));
  $('#dv-close').addEventListener('click', () => closeModal('#drop-view'));
  $('#pv-img').addEventListener('error', () => { if ($('#pv-img').getAttribute('src')) $('#pv-caption').textContent += ' (the image could not be shown)'; });

  document.addEventListener('keydown', (e) => {
    const typing = ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement?.tagName);
    if (e.key === 'Escape') {
      if (!$('#photo-view').hidden) { closeModal('#photo-view'); e.preventDefault(); return; }
      if (!$('#drop-view').hidden) { closeModal('#drop-view'); e.preventDefault(); return; }
    }
    if (!$('#photo-view').hidden && state.photoIndex >= 0 && (e.key === 'ArrowRight' || e.key === 'ArrowLeft')) {
      const next = state.photoIndex + (e.key === 'ArrowRight' ? 1 : -1);
      if (next >= 0 && next < state.results.length) { gridView.setActive(next); openPhoto(next); }
      e.preventDefault();
      return;
    }
    if (e.altKey && ['1', '2', '3', '4', '5'].includes(e.key)) {
      e.preventDefault();
      ({ 1: goSearch, 2: () => showView('folders'), 3: () => showView('settings'), 4: () => showView('classify'),
        5: () => showView('duplicates') })[e.key]();
      return;
    }
    if (e.key === '/' && !typing) { e.preventDefault(); goSearch(); $('#q').focus(); }
  });
}

async function main() {
  if (!inApp) {
    showError({ code: 'ui', message: 'This page is the Shoebox app\'s window: open it with the Shoebox app.' });
    return;
  }
  wire();
  on('activity', (a) => { activity = a; renderActivity(); });
  on('models', (m) => {
    const was = models.clip;
    models = m;
    renderActivity();
    if (m.clip === 'ready' && was !== 'ready') scheduleSearch(0);
  });
  // Fresh results for the search being looked at; another view is not pulled away from.
  on('library-changed', async () => {
    await refreshStatus();
    renderActivity();
    if (state.view === 'search') scheduleSearch(300);
  });
  on('notice', (n) => { if (n.code !== 'rescan') showError(n); });
  try {
    const st = await call('get_state');
    activity = st.activity;
    models = st.models;
    $('#welcome-path').placeholder = st.suggestedFolder || '~/Pictures';
  } catch (e) { showError(e, 'Starting'); }
  await refreshStatus();
  renderActivity();
  goSearch();
  (state.view === 'welcome' ? $('#welcome-pick') : $('#q')).focus();
  document.body.dataset.ready = 'true';
}

main().catch((e) => showError(e, 'Starting'));
