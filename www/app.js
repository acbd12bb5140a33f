// @ts-check
// The onegrid board: lists of tasks (LWW maps `lists` and `tasks`) with tags (the OR map `tags`),
// kept in IndexedDB and synced with the server that served this page. It works offline: the
// grid lives in this tab, the service worker (sw.js) keeps the app and the package, and the
// connection catches up whatever either side missed once the server is back.

import init, { Grid, IndexedDbStorage, connectWebSocket } from '/pkg/onegrid.js';

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

// ---- the module, checked: its SHA-256 is shown, the same `onegrid info` prints ----------------
const bytes = await (await fetch('/pkg/onegrid_bg.wasm')).arrayBuffer();
await init({ module_or_path: bytes });
$('module-sha').textContent = hex(await crypto.subtle.digest('SHA-256', bytes));

// ---- one node per tab --------------------------------------------------------------------------
const nodeId = await claimNodeId();
$('node').textContent = nodeId;

// The grid loads from this tab's database before the network answers (a reload shows the board
// at once, with or without a server).
const grid = new Grid({ nodeId, storage: new IndexedDbStorage({ name: `onegrid-${nodeId}` }) });
const lists = await grid.getMapAsync('lists', 'lww');
const tasks = await grid.getMapAsync('tasks', 'lww');
const tags = await grid.getMapAsync('tags', 'or');

/** @typedef {{ name: string, created: number }} List */
/** @typedef {{ list: string, title: string, done: boolean, created: number }} Task */

/**
 * Tasks this tab changed, each with when the server had acknowledged the change (0 while it has
 * not). A remote write that replaces one of them and is stamped before that moment cannot have
 * seen this tab's change: the two were concurrent, whichever side reconnected first. Kept in
 * sessionStorage, so a reload while offline still tells of the conflict when the server is back.
 */
const unacked = new Map(
  /** @type {unknown[]} */ (JSON.parse(sessionStorage.getItem('onegrid.unacked') ?? '[]')).map(unackedEntry),
);
/**
 * One saved entry: `[id, ackedAt]`, or a bare id as earlier versions of the app saved it.
 * @param {unknown} saved
 * @returns {[string, number]}
 */
function unackedEntry(saved) {
  return Array.isArray(saved) ? [String(saved[0]), Number(saved[1]) || 0] : [String(saved), 0];
}
/** How long an acknowledged change still recognises a concurrent write that arrives late. */
const REMEMBER_MS = 24 * 60 * 60 * 1000;
function saveUnacked() {
  sessionStorage.setItem('onegrid.unacked', JSON.stringify([...unacked]));
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

let flushTimer = 0;
/** Keeps this tab's database up to date, a little after the changes stop. */
function scheduleFlush() {
  clearTimeout(flushTimer);
  flushTimer = window.setTimeout(() => {
    grid.flush().catch((e) => note(`Saving to this browser failed: ${e.message}`));
  }, 150);
}

lists.subscribe(() => {
  scheduleRender();
  scheduleFlush();
});
tags.subscribe(() => {
  scheduleRender();
  scheduleFlush();
});
tasks.subscribe((change) => {
  if (change.origin === 'remote') noticeConcurrentEdit(change.key, /** @type {Task | undefined} */ (change.value));
  scheduleRender();
  scheduleFlush();
});

/**
 * A remote write replaced a task this tab changed moments ago: both edits met, and the later
 * timestamp won on every replica. Say so, and show which.
 * @param {string} id
 * @param {Task | undefined} value
 */
function noticeConcurrentEdit(id, value) {
  const ackedAt = unacked.get(id);
  if (ackedAt === undefined) return;
  unacked.delete(id);
  saveUnacked();
  const stamp = tasks.getRecord(id)?.timestamp;
  const winner = stamp?.nodeId;
  if (stamp === undefined || winner === nodeId) return;
  // Stamped after this tab's change reached the server: made with it in view, not beside it.
  if (ackedAt !== 0 && Number(stamp.millis) >= ackedAt) return;
  const title = value ? `“${value.title}”` : 'a removed task';
  note(`Concurrent edit on ${title}: this tab and ${winner} both changed it; the later write (${winner}'s) wins on every replica.`);
  flash(id);
}

// ---- the connection ------------------------------------------------------------------------------
const syncUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync`;
/** @type {ReturnType<typeof connectWebSocket>} */
let live = connect();

function connect() {
  return connectWebSocket(grid, syncUrl, {
    getToken: () => localStorage.getItem('onegrid.token') || undefined,
    reconnect: true,
    onError: (/** @type {Error & { code?: string }} */ e) => note(`Sync: ${e.code ? `${e.code}: ` : ''}${e.message}`),
  });
}

function renderStatus() {
  const state = navigator.onLine ? live.state : 'offline';
  const el = $('state');
  if (el.dataset.state !== state) {
    el.dataset.state = state;
    el.textContent = state;
  }
  $('pending').textContent = String(live.pendingWrites);
  // Every write so far is acknowledged: note when, and forget what was acknowledged long ago.
  if (unacked.size > 0 && live.state === 'synced' && live.pendingWrites === 0) {
    const now = Date.now();
    let changed = false;
    for (const [id, at] of unacked) {
      if (at === 0) unacked.set(id, now);
      else if (now - at > REMEMBER_MS) unacked.delete(id);
      else continue;
      changed = true;
    }
    if (changed) saveUnacked();
  }
}
setInterval(renderStatus, 250);
addEventListener('online', renderStatus);
addEventListener('offline', renderStatus);
addEventListener('pagehide', () => void grid.flush());

// ---- writes --------------------------------------------------------------------------------------
/** A new key: time-ordered, unique per tab. */
function newId() {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * @param {string} id
 * @param {Partial<Task>} change
 */
function updateTask(id, change) {
  const task = /** @type {Task | undefined} */ (tasks.get(id));
  if (task === undefined) return;
  unacked.set(id, 0);
  saveUnacked();
  tasks.set(id, { ...task, ...change });
}

$('new-list').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('new-list-name'));
  const name = input.value.trim();
  if (name === '') return;
  lists.set(newId(), { name, created: Date.now() });
  input.value = '';
});

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = /** @type {HTMLInputElement} */ ($('token')).value.trim();
  if (token) localStorage.setItem('onegrid.token', token);
  else localStorage.removeItem('onegrid.token');
  live.close();
  live = connect();
});
/** @type {HTMLInputElement} */ ($('token')).value = localStorage.getItem('onegrid.token') ?? '';

// ---- rendering -----------------------------------------------------------------------------------
const listTemplate = /** @type {HTMLTemplateElement} */ ($('list-template'));
const taskTemplate = /** @type {HTMLTemplateElement} */ ($('task-template'));

function render() {
  // Keep the focus (and the caret) where the user is typing across a re-render.
  const focused = /** @type {HTMLElement | null} */ (document.activeElement);
  const focusKey = focused?.dataset.focusKey;
  const selection = focused instanceof HTMLInputElement ? [focused.selectionStart, focused.selectionEnd] : null;
  const typed = focused instanceof HTMLInputElement ? focused.value : null;

  const byList = new Map();
  for (const [id, value] of tasks.entries()) {
    const task = /** @type {Task} */ (value);
    if (!byList.has(task.list)) byList.set(task.list, []);
    byList.get(task.list).push([id, task]);
  }
  const board = $('board');
  board.replaceChildren();
  const sorted = lists.entries().sort(([a, x], [b, y]) => /** @type {List} */ (x).created - /** @type {List} */ (y).created || (a < b ? -1 : 1));
  for (const [listId, value] of sorted) {
    board.append(renderList(listId, /** @type {List} */ (value), byList.get(listId) ?? []));
  }
  $('empty').hidden = sorted.length > 0;
  $('main').setAttribute('aria-busy', 'false');

  if (focusKey) {
    const again = /** @type {HTMLInputElement | null} */ (board.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`) ?? document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`));
    if (again) {
      if (typed !== null && again.value !== typed && again.classList.contains('title') === false) again.value = typed;
      again.focus();
      if (selection && again.setSelectionRange) again.setSelectionRange(selection[0], selection[1]);
    }
  }
}

/**
 * @param {string} listId
 * @param {List} list
 * @param {Array<[string, Task]>} items
 */
function renderList(listId, list, items) {
  const section = /** @type {HTMLElement} */ (/** @type {DocumentFragment} */ (listTemplate.content.cloneNode(true)).firstElementChild);
  const headingId = `list-${listId}`;
  section.setAttribute('aria-labelledby', headingId);
  const heading = /** @type {HTMLElement} */ (section.querySelector('.list-name'));
  heading.id = headingId;
  heading.textContent = list.name;
  const removeList = /** @type {HTMLButtonElement} */ (section.querySelector('.remove-list'));
  removeList.setAttribute('aria-label', `Remove list ${list.name}`);
  removeList.addEventListener('click', () => {
    for (const [id] of items) tasks.remove(id);
    lists.remove(listId);
  });
  const ul = /** @type {HTMLElement} */ (section.querySelector('.tasks'));
  items.sort(([a, x], [b, y]) => x.created - y.created || (a < b ? -1 : 1));
  for (const [id, task] of items) ul.append(renderTask(id, task));
  const form = /** @type {HTMLFormElement} */ (section.querySelector('.new-task'));
  const input = /** @type {HTMLInputElement} */ (form.querySelector('input'));
  input.id = `new-task-${listId}`;
  input.dataset.focusKey = `new-task-${listId}`;
  /** @type {HTMLLabelElement} */ (form.querySelector('label')).htmlFor = input.id;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const title = input.value.trim();
    if (title === '') return;
    tasks.set(newId(), { list: listId, title, done: false, created: Date.now() });
    input.value = '';
  });
  return section;
}

/**
 * @param {string} id
 * @param {Task} task
 */
function renderTask(id, task) {
  const li = /** @type {HTMLElement} */ (/** @type {DocumentFragment} */ (taskTemplate.content.cloneNode(true)).firstElementChild);
  li.dataset.task = id;
  li.classList.toggle('is-done', task.done);
  const done = /** @type {HTMLInputElement} */ (li.querySelector('.done'));
  done.checked = task.done;
  done.setAttribute('aria-label', `Done: ${task.title}`);
  done.addEventListener('change', () => updateTask(id, { done: done.checked }));

  const title = /** @type {HTMLInputElement} */ (li.querySelector('.title'));
  title.value = task.title;
  title.setAttribute('aria-label', 'Task title');
  title.dataset.focusKey = `title-${id}`;
  const commit = () => {
    const text = title.value.trim();
    if (text !== '' && text !== task.title) updateTask(id, { title: text });
  };
  title.addEventListener('change', commit);
  title.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') title.blur();
  });

  const tagList = /** @type {HTMLElement} */ (li.querySelector('.tags'));
  for (const tag of new Set(/** @type {string[]} */ (tags.get(id)))) {
    const chip = document.createElement('li');
    chip.className = 'tag';
    chip.append(tag);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '×';
    remove.setAttribute('aria-label', `Remove tag ${tag}`);
    remove.addEventListener('click', () => tags.remove(id, tag));
    chip.append(remove);
    tagList.append(chip);
  }
  const tagForm = /** @type {HTMLFormElement} */ (li.querySelector('.new-tag'));
  const tagInput = /** @type {HTMLInputElement} */ (tagForm.querySelector('input'));
  tagInput.id = `tag-${id}`;
  tagInput.dataset.focusKey = `tag-${id}`;
  /** @type {HTMLLabelElement} */ (tagForm.querySelector('label')).htmlFor = tagInput.id;
  tagForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const tag = tagInput.value.trim();
    if (tag !== '') tags.add(id, tag);
    tagInput.value = '';
  });

  const removeTask = /** @type {HTMLButtonElement} */ (li.querySelector('.remove-task'));
  removeTask.setAttribute('aria-label', `Remove task ${task.title}`);
  removeTask.addEventListener('click', () => tasks.remove(id));

  const stamp = tasks.getRecord(id)?.timestamp;
  if (stamp) {
    const who = stamp.nodeId === nodeId ? 'this tab' : stamp.nodeId;
    /** @type {HTMLElement} */ (li.querySelector('.meta')).textContent = `last write: ${who}, ${new Date(Number(stamp.millis)).toLocaleTimeString()}`;
  }
  return li;
}

/** @param {string} id */
function flash(id) {
  requestAnimationFrame(() => {
    const li = document.querySelector(`[data-task="${CSS.escape(id)}"]`);
    li?.classList.add('flash');
    setTimeout(() => li?.classList.remove('flash'), 2000);
  });
}

/** @param {string} text */
function note(text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  const log = $('activity');
  log.prepend(item);
  while (log.childElementCount > 50) log.lastElementChild?.remove();
}

// ---- helpers ---------------------------------------------------------------------------------------
/** @param {ArrayBuffer} digest */
function hex(digest) {
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * This tab's node id: kept across reloads of the tab (sessionStorage), and held with a Web Lock
 * so a duplicated tab, which copies sessionStorage, takes a new one instead of sharing it (a
 * node id names one replica; the server refuses a second connection with it).
 * @returns {Promise<string>}
 */
async function claimNodeId() {
  const stored = sessionStorage.getItem('onegrid.nodeId');
  for (const id of [stored, `tab-${Math.random().toString(36).slice(2, 10)}`]) {
    if (!id) continue;
    const held = await new Promise((resolve) => {
      if (!navigator.locks) return resolve(true);
      navigator.locks.request(`onegrid-node-${id}`, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // Held for the life of the page when granted.
        return lock === null ? undefined : new Promise(() => {});
      });
    });
    if (held) {
      sessionStorage.setItem('onegrid.nodeId', id);
      return id;
    }
  }
  throw new Error('no node id could be claimed');
}

render();
renderStatus();
if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
// For tests and for the curious: the grid, its maps and the connection.
Object.assign(window, { onegridApp: { grid, nodeId, maps: { lists, tasks, tags }, get live() { return live; } } });
