// The explorer page: find personas, list messages page by page, open an
// envelope and check its signatures against the sender's key and the node
// key, and follow new messages live. Everything comes from the public
// GraphQL API (PROTOCOL.md section 10); server text is only ever inserted as
// text, never as HTML.

import { client } from './graphql.js';
import { importPublicKey, verifyHash, verifyTimestampedSignature } from './verify.js';

const api = client(document.querySelector('meta[name="graphql-endpoint"]').content);
document.getElementById('graphiql').href = api.httpUrl.href;

const PERSONA = 'address pubkey nickname createdAt';
const SUMMARY = 'messageHash messageType createdAt sender { address nickname } ACL { reader { address } }';

// What the node serves, learned once at start.
const node = { key: null, persona: null, hasReceipt: false, hasLiveList: false };
// The listing on screen: its query, and the cursor of every page so far.
const listing = { by: null, value: null, limit: 25, cursors: [null] };

// ---------------------------------------------------------------- helpers

/** An element with attributes (`on*` are listeners) and children (text or nodes). */
function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) element.setAttribute(name, value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

const $ = (id) => document.getElementById(id);
const short = (text, n = 12) => (text && text.length > n + 1 ? `${text.slice(0, n)}…` : text ?? '');

function showError(error) {
  const box = $('error');
  box.hidden = !error;
  box.textContent = error ? `${error.code ? `${error.code}: ` : ''}${error.message ?? error}` : '';
}

/** Runs an action from the UI, reporting its failure instead of losing it. */
const act = (action) => (event) => {
  event?.preventDefault();
  showError(null);
  Promise.resolve(action(event)).catch(showError);
};

/** A check's outcome: `data-state` is `ok`, `fail` or `absent` (null result). */
function badge(testid, result, words = { ok: 'verified', fail: 'FAILED', absent: 'absent' }) {
  const state = result === null ? 'absent' : result.ok ? 'ok' : 'fail';
  return el('span', { class: `badge ${state}`, 'data-testid': testid, 'data-state': state, title: result?.detail ?? '' }, words[state]);
}

function personaLink(persona, address, brief = false) {
  const target = persona?.address ?? address;
  const shown = persona?.nickname ? (brief ? persona.nickname : `${persona.nickname} (${short(target, 10)})`) : short(target, brief ? 10 : 40);
  return el('a', { href: '#', title: target, onclick: act(() => find(target)) }, shown);
}

function messageLink(hash) {
  return el('a', { href: `#message=${encodeURIComponent(hash)}`, class: 'hash nowrap', title: hash, onclick: act(() => openMessage(hash)) }, short(hash, 10));
}

function setHash(name, value) {
  history.replaceState(null, '', `#${name}=${encodeURIComponent(value)}`);
}

// ---------------------------------------------------------------- node

async function loadNode() {
  const data = await api.query(`{
    teleferic { persona { ${PERSONA} } }
    envelope: __type(name: "MessageEnvelope") { fields { name } }
    __schema { subscriptionType { fields { name } } }
  }`);
  node.persona = data.teleferic?.persona ?? null;
  node.hasReceipt = (data.envelope?.fields ?? []).some((field) => field.name === 'receipt');
  node.hasLiveList = (data.__schema.subscriptionType?.fields ?? []).some((field) => field.name === 'messageAdded');
  let keyState = { ok: false, detail: 'the node has no persona' };
  if (node.persona) {
    try {
      node.key = await importPublicKey(node.persona.pubkey);
      keyState = { ok: true, detail: 'node key loaded' };
    } catch (error) {
      keyState = { ok: false, detail: `node key unusable: ${error.message}` };
    }
  }
  $('node').replaceChildren(
    'node ',
    node.persona ? personaLink(node.persona) : '?',
    ' ',
    badge('node-key', keyState, { ok: 'key loaded', fail: 'no usable key' }),
  );
}

// ---------------------------------------------------------------- find

async function find(text) {
  const q = text.trim();
  $('find-input').value = q;
  setHash('find', q);
  if (/^[A-Za-z0-9+/]{43}=$/.test(q) && (await openMessage(q))) {
    $('find-result').replaceChildren(el('p', {}, 'a message: see the envelope'));
    return;
  }
  let persona = null;
  if (/^[1-9A-HJ-NP-Za-km-z]{25,36}$/.test(q)) {
    persona = (await api.query(`query($v: Address!) { persona(address: $v) { ${PERSONA} } }`, { v: q }).catch(() => null))?.persona;
  }
  persona ??= (await api.query(`query($v: String!) { persona(nickname: $v) { ${PERSONA} } }`, { v: q })).persona;
  if (!persona) {
    $('find-result').replaceChildren(el('p', { 'data-testid': 'not-found' }, `no persona or message matches “${q}”`));
    return;
  }
  $('find-result').replaceChildren(
    el('dl', { class: 'fields', 'data-testid': 'persona' },
      el('dt', {}, 'nickname'), el('dd', { 'data-testid': 'persona-nickname' }, persona.nickname ?? ''),
      el('dt', {}, 'address'), el('dd', { 'data-testid': 'persona-address' }, persona.address),
      el('dt', {}, 'registered'), el('dd', {}, persona.createdAt ?? ''),
      el('dt', {}, 'public key'), el('dd', {}, el('details', {}, el('summary', {}, short(persona.pubkey, 24)), el('pre', {}, persona.pubkey))),
    ),
    el('p', {},
      el('button', { 'data-testid': 'persona-sent', onclick: act(() => browse('sender', persona.address)) }, 'messages sent'),
      ' ',
      el('button', { 'data-testid': 'persona-received', onclick: act(() => browse('reader', persona.address)) }, 'messages it can read'),
    ),
  );
}

// ---------------------------------------------------------------- browse

const LISTINGS = {
  sender: ['messageBySender', 'sender', 'Address'],
  reader: ['messageByReader', 'reader', 'Address'],
  date: ['messageByDate', 'date', 'Date'],
};

/** Lists from the first page. */
async function browse(by, value, limit = Number($('browse-limit').value)) {
  Object.assign(listing, { by, value: value.trim(), limit, cursors: [null] });
  $('browse-by').value = by;
  $('browse-value').value = listing.value;
  setHash(by, listing.value);
  await showPage();
}

/** Shows the page whose cursor is last in `listing.cursors`. */
async function showPage() {
  const [field, argument, scalar] = LISTINGS[listing.by];
  const after = listing.cursors.at(-1);
  const data = await api.query(
    `query($v: ${scalar}!, $limit: Int, $after: String) { page: ${field}(${argument}: $v, limit: $limit, after: $after) { ${SUMMARY} } }`,
    { v: listing.value, limit: listing.limit, after },
  );
  const page = data.page;
  $('message-list').replaceChildren(
    ...page.map((m) =>
      el('tr', { 'data-testid': 'message-row', 'data-hash': m.messageHash },
        el('td', { class: 'nowrap', title: m.createdAt ?? '' }, (m.createdAt ?? '').replace('T', ' ').slice(0, 19)),
        el('td', {}, m.messageType),
        el('td', {}, personaLink(m.sender, undefined, true)),
        el('td', {}, String((m.ACL ?? []).length)),
        el('td', {}, messageLink(m.messageHash)),
      ),
    ),
  );
  if (page.length === 0) {
    $('message-list').append(el('tr', { 'data-testid': 'list-end' }, el('td', { colspan: 5 }, after ? 'no more messages' : 'no messages')));
  }
  const number = listing.cursors.length;
  $('page-label').textContent = `page ${number}`;
  $('page-label').dataset.page = String(number);
  $('first-page').disabled = $('previous-page').disabled = number === 1;
  // A full page may have a next one; an empty page ends the listing (section 10).
  $('next-page').disabled = page.length < listing.limit;
  $('next-page').dataset.after = page.at(-1)?.messageHash ?? '';
}

// ---------------------------------------------------------------- envelope

const envelopeFields = () =>
  `sender { ${PERSONA} } messageType messageHash messageSign dossierHash bodyHash createdAt message
   ACL { reader { address nickname } key }
   objects { objectHash metaHashes container { containerHash containerSign objectContainer } }
   ${node.hasReceipt ? 'receipt' : ''}`;

/** Opens the envelope of `hash`; false when no message has it. */
async function openMessage(hash) {
  const data = await api.query(`query($h: SHA256!) { messageByHash(messageHash: $h) { ${envelopeFields()} } }`, { h: hash });
  const m = data.messageByHash;
  if (!m) return false;
  setHash('message', hash);
  for (const row of document.querySelectorAll('[data-testid=message-row], [data-testid=live-item]')) {
    row.classList.toggle('open', row.dataset.hash === hash);
  }
  const section = $('envelope');
  section.dataset.hash = m.messageHash;
  section.replaceChildren(
    el('h2', {}, 'Envelope'),
    el('dl', { class: 'fields' },
      field('messageHash', m.messageHash, 'envelope-hash'),
      field('messageType', m.messageType),
      field('sender', personaLink(m.sender)),
      field('accepted', m.createdAt ?? ''),
      field('dossierHash', m.dossierHash),
      field('bodyHash', m.bodyHash),
      field('message', el('details', {}, el('summary', {}, `${m.message.length} characters of base64`), el('pre', {}, m.message))),
      field('messageSign', el('details', {}, el('summary', {}, short(m.messageSign, 24)), el('pre', {}, m.messageSign))),
      node.hasReceipt ? field('receipt', m.receipt ? el('details', {}, el('summary', {}, short(m.receipt, 24)), el('pre', {}, m.receipt)) : 'none') : null,
    ),
    el('h3', {}, 'Checks'),
    el('table', { class: 'checks', 'data-testid': 'checks' }, el('tbody', {}, el('tr', {}, el('td', {}, 'checking…')))),
    el('h3', {}, `Readers (${(m.ACL ?? []).length})`),
    el('ul', { 'data-testid': 'acl' }, (m.ACL ?? []).map((rule) =>
      el('li', {}, rule.reader ? personaLink(rule.reader) : 'unknown reader', ' ', el('code', { title: rule.key }, `key ${short(rule.key, 16)}`)),
    )),
    el('h3', {}, `Objects (${(m.objects ?? []).length})`),
    el('ul', { 'data-testid': 'objects' }, (m.objects ?? []).map((o) =>
      el('li', {},
        el('div', {}, 'object ', el('code', {}, o.objectHash)),
        o.metaHashes.map((h) => el('div', {}, 'meta ', el('code', {}, h))),
        o.container ? el('div', {}, 'container ', el('code', {}, o.container.containerHash), ` (${o.container.objectContainer.length} characters)`) : null,
      ),
    )),
  );
  section.querySelector('tbody').replaceChildren(...(await checks(m)));
  return true;
}

function field(name, value, testid) {
  return [el('dt', {}, name), el('dd', { 'data-testid': testid }, value)];
}

/** The rows of the checks table: every hash and signature that can be checked without a key to read. */
async function checks(m) {
  const rows = [];
  const row = (testid, what, result) =>
    rows.push(el('tr', {}, el('td', {}, badge(testid, result)), el('th', {}, what), el('td', { class: 'detail' }, result?.detail ?? '')));
  let senderKey = null;
  try {
    senderKey = await importPublicKey(m.sender.pubkey);
  } catch (error) {
    row('sender-key', 'sender key', { ok: false, detail: error.message });
  }
  const nodeKey = node.key;
  const signed = async (prefix, what, whose, s, h, key) => {
    if (!key || !nodeKey) {
      const missing = { ok: false, detail: key ? 'no node key' : 'no signer key' };
      row(`${prefix}-sign`, `${what}: ${whose}'s signature`, missing);
      row(`${prefix}-t`, `${what}: node's timestamp T`, missing);
      return;
    }
    const result = await verifyTimestampedSignature(s, h, key, nodeKey);
    row(`${prefix}-sign`, `${what}: ${whose}'s signature`, result.signature);
    row(`${prefix}-t`, `${what}: node's timestamp T`, result.timestamp);
  };
  row('verify-message-hash', 'messageHash = hash(message)', await verifyHash(m.messageHash, m.message));
  await signed('verify-message', 'messageSign', 'sender', m.messageSign, m.messageHash, senderKey);
  if (node.hasReceipt && m.receipt) {
    await signed('verify-receipt', 'receipt', 'node', m.receipt, m.messageHash, nodeKey);
  } else {
    const why = node.hasReceipt ? 'stored before receipts existed' : 'this node serves no receipts';
    rows.push(el('tr', {}, el('td', {}, badge('verify-receipt-sign', null)), el('th', {}, "receipt: node's signature"), el('td', { class: 'detail' }, why)));
  }
  for (const [i, o] of (m.objects ?? []).entries()) {
    if (!o.container) continue;
    const c = o.container;
    row(`verify-container-${i}-hash`, `object ${i + 1} containerHash = hash(container)`, await verifyHash(c.containerHash, c.objectContainer));
    await signed(`verify-container-${i}`, `object ${i + 1} containerSign`, 'sender', c.containerSign, c.containerHash, senderKey);
  }
  return rows;
}

// ---------------------------------------------------------------- live

function startLive() {
  const status = $('live-status');
  const set = (state, text, title = '') => {
    status.dataset.state = state;
    status.className = `badge ${state}`;
    status.textContent = text;
    status.title = title;
  };
  if (!node.hasLiveList) {
    set('unavailable', 'live updates unavailable', 'this node has no messageAdded subscription');
    $('live-list').replaceChildren(el('li', { class: 'hint' }, 'This node does not offer the messageAdded subscription.'));
    return;
  }
  set('pending', 'connecting…');
  api.subscribe(`subscription { messageAdded { ${SUMMARY} } }`, {}, {
    open: () => set('ok', 'live'),
    next: (data) => {
      const m = data.messageAdded;
      $('live-list').prepend(
        el('li', { 'data-testid': 'live-item', 'data-hash': m.messageHash },
          messageLink(m.messageHash), ` ${m.messageType} from `, personaLink(m.sender), ` ${m.createdAt ?? ''}`),
      );
      while ($('live-list').children.length > 50) $('live-list').lastChild.remove();
    },
    error: (message) => showError(`live updates: ${message}`),
    closed: (reason) => set('unavailable', 'live updates unavailable', reason),
  });
}

// ---------------------------------------------------------------- start

$('find-form').addEventListener('submit', act(() => find($('find-input').value)));
$('browse-form').addEventListener('submit', act(() => browse($('browse-by').value, $('browse-value').value)));
$('browse-by').addEventListener('change', () => {
  const input = $('browse-value');
  const isDate = $('browse-by').value === 'date';
  input.placeholder = isDate ? 'YYYY-MM-DD' : 'address';
  if (isDate && !/^\d{4}-\d{2}-\d{2}$/.test(input.value)) input.value = new Date().toISOString().slice(0, 10);
  if (!isDate && /^\d{4}-\d{2}-\d{2}$/.test(input.value)) input.value = '';
});
$('next-page').addEventListener('click', act(() => {
  listing.cursors.push($('next-page').dataset.after);
  return showPage();
}));
$('previous-page').addEventListener('click', act(() => {
  listing.cursors.pop();
  return showPage();
}));
$('first-page').addEventListener('click', act(() => {
  listing.cursors = [null];
  return showPage();
}));

async function start() {
  await loadNode();
  document.body.dataset.ready = 'true';
  startLive();
  // A shared link: #find=…, #message=…, #sender=…, #reader=… or #date=….
  const [name, value] = location.hash.slice(1).split('=');
  const target = decodeURIComponent(location.hash.slice(name.length + 2));
  if (value === undefined || !target) return;
  if (name === 'find') await find(target);
  else if (name === 'message') await openMessage(target);
  else if (name in LISTINGS) await browse(name, target);
}

start().catch((error) => {
  showError(error);
  document.body.dataset.ready = 'error';
});
