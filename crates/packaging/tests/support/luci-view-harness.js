// Loads the LuCI view the way LuCI does (the 'require lines become arguments of a function
// made from the file), with small stand-ins for LuCI's form, fs, ui, poll and dom modules, and
// checks what it renders and which commands it runs. Usage: node luci-view-harness.js VIEW.js
'use strict';
const assert = require('assert');
const fsys = require('fs');

const source = fsys.readFileSync(process.argv[2], 'utf8');

String.prototype.format = function() {
	let i = 0;
	const args = arguments;
	return this.replace(/%s/g, () => String(args[i++]));
};

function E(tag, attrs, children) {
	if (Array.isArray(tag))
		return { tag: '#fragment', attrs: {}, children: [].concat(attrs || []) };
	if (attrs != null && (typeof attrs != 'object' || Array.isArray(attrs) || attrs.tag)) {
		children = attrs;
		attrs = {};
	}
	return { tag, attrs: attrs || {}, children: [].concat(children == null ? [] : children) };
}
function text(node) {
	if (node == null) return '';
	if (typeof node != 'object') return String(node);
	return node.children.map(text).join(' ');
}
function find(node, tag, out = []) {
	if (node && typeof node == 'object') {
		if (node.tag == tag) out.push(node);
		node.children.forEach(c => find(c, tag, out));
	}
	return out;
}

// --- stand-ins ---------------------------------------------------------------------------
let statusText = null;
const calls = [];
let execResult = { code: 0, stdout: 'ok', stderr: '' };
const fs = {
	read: (p) => { calls.push(['read', p]); return statusText == null ? Promise.reject(new Error('ENOENT')) : Promise.resolve(statusText); },
	exec: (cmd, args) => { calls.push(['exec', [cmd].concat(args).join(' ')]); return Promise.resolve(execResult); },
	remove: (p) => { calls.push(['remove', p]); return Promise.resolve(); }
};
const options = [];
class Option {
	constructor(type, name) { this.type = type; this.name = name; this.values = []; }
	value(v) { this.values.push(v); }
}
class Section {
	constructor(type, args) { this.type = type; this.args = args; }
	option(type, name) { const o = new Option(type, name); options.push(o); return o; }
}
const form = {
	Map: class { constructor(config) { this.config = config; this.sections = []; }
		section(type, ...args) { const s = new Section(type, args); this.sections.push(s); return s; }
		render() { return Promise.resolve(E('div', { 'class': 'map' }, [ 'map:' + this.config ])); } },
	NamedSection: 'NamedSection', Flag: 'Flag', ListValue: 'ListValue', Value: 'Value'
};
const polls = [];
const poll = { add: (fn, interval) => polls.push([fn, interval]) };
const modals = [];
const ui = {
	uploadFile: (p) => { calls.push(['upload', p]); return Promise.resolve({ size: 1 }); },
	showModal: (title, body) => modals.push([title, body]),
	hideModal: () => {},
	addNotification: (t, body) => modals.push(['notification', body]),
	createHandlerFn: (ctx, fn, ...args) => () => fn.apply(ctx, args)
};
const dom = { content: (node, c) => { node.children = [c]; } };
const view = { extend: (o) => o };
const L = { resolveDefault: (p, d) => Promise.resolve(p).catch(() => d) };
const _ = (s) => s;

// LuCI turns the 'require lines into the function's parameters.
const required = [];
const body = source.replace(/^'require ([\w.]+)';$/mg, (m, name) => { required.push(name); return ''; });
const modules = { view, form, fs, ui, poll, dom };
const factory = new Function(...required, 'L', 'E', '_', 'document', body);
const document = { getElementById: () => null };

(async () => {
	let checks = 0;
	const v = factory(...required.map(n => modules[n]), L, E, _, document);

	// No status file yet.
	let tree = await v.render(await v.load());
	assert.match(text(tree), /No status file yet/); checks++;
	assert.deepStrictEqual(options.map(o => o.name), [ 'enabled', 'log_level', 'config_file' ]); checks++;
	assert.deepStrictEqual(options[1].values, [ 'error', 'warn', 'info', 'debug', 'trace' ]); checks++;
	assert.strictEqual(options[2].validate('x', '/etc/fieldbridge/config.json'), true); checks++;
	assert.notStrictEqual(options[2].validate('x', 'relative.json'), true); checks++;
	assert.deepStrictEqual(polls.map(p => p[1]), [ 5 ]); checks++;

	// A flat status object: one row per applet, known columns first, extra keys shown.
	statusText = JSON.stringify({
		'mqtt-client': { state: 'running', pid: 1234, restarts: 2, last_error: null, since: 'x' },
		'modbus-master': { state: 'invalid config', pid: null, restarts: 0, last_error: 'Devices row 3 (baudrate): not a number' }
	});
	tree = await v.render(await v.load());
	let rows = find(tree, 'tr');
	assert.strictEqual(rows.length, 3); checks++;
	assert.match(text(rows[0]), /^Protocol state pid restarts since last error$/); checks++;
	assert.match(text(rows[1]), /modbus-master invalid config - 0 - Devices row 3 \(baudrate\): not a number/); checks++;
	assert.match(text(rows[2]), /mqtt-client running 1234 2 x -/); checks++;

	// The supervisor's own format (crates/supervisor/src/status.rs).
	statusText = JSON.stringify({
		version: 1,
		supervisor: { pid: 812, config: '/etc/fieldbridge/config.json', started: 1795358298, updated: 1795358300, running: true, config_loaded: 1795358298 },
		applets: {
			'iec104-master': { state: 'disabled', restarts: 0, since: 1795358298, message: 'no enabled device of protocol iec104-master' },
			'modbus-master': { state: 'invalid_config', restarts: 0, since: 1795358298, errors: [ 'devices[2].modbus_id: expected an integer, got "abc"' ], message: 'not started: 1 config error' },
			'mqtt-client': { state: 'backoff', restarts: 3, since: 1795358299, next_start: 1795358303,
				last_exit: { at: 1795358299, code: 1, ran_ms: 230, description: 'exit code 1' }, message: 'exit code 1; restarting in 4 s' }
		}
	});
	tree = await v.render(await v.load());
	rows = find(tree, 'tr');
	assert.strictEqual(rows.length, 4); checks++;
	assert.match(text(rows[0]), /^Protocol state restarts since message errors last exit next start$/); checks++;
	const when = new Date(1795358298 * 1000).toLocaleString();
	assert.ok(text(rows[1]).includes(`iec104-master disabled 0 ${when} no enabled device of protocol iec104-master - - -`)); checks++;
	assert.match(text(rows[2]), /modbus-master invalid_config 0 .* not started: 1 config error devices\[2\]\.modbus_id: expected an integer, got "abc" - -/); checks++;
	assert.match(text(rows[3]), /mqtt-client backoff 3 .* exit code 1; restarting in 4 s - exit code 1 /); checks++;
	assert.match(text(tree), /Supervisor: running, pid 812, config \/etc\/fieldbridge\/config.json, updated /); checks++;
	assert.ok(!/null|undefined|\[object/.test(text(tree))); checks++;

	// The IEC 104 slave devices ("slaves"): masters and counters, times in ms.
	const slaveStatus = JSON.parse(statusText);
	slaveStatus.applets['iec104-slave'] = { state: 'running', pid: 900, restarts: 0, since: 1795358298, message: 'running' };
	slaveStatus.slaves = {
		scada: { updated_ms: 1795358300120, masters: [
			{ address: '10.0.0.5:40001', group: 0, started: true, since_ms: 1795358290010 },
			{ address: '[fd00::6]:2404', group: 1, started: false, since_ms: 1795358295000 } ],
			sent: 1200, buffered: 7, dropped: 2, refused: 1, commands: 3 },
		spare: { updated_ms: 1795358300000, masters: [], sent: 0, buffered: 0, dropped: 0, refused: 0, commands: 0 }
	};
	statusText = JSON.stringify(slaveStatus);
	tree = await v.render(await v.load());
	const tables = find(tree, 'table');
	assert.strictEqual(tables.length, 2); checks++;
	assert.strictEqual(find(tables[0], 'tr').length, 5); checks++;
	assert.match(text(tree), /IEC 104 slave devices/); checks++;
	rows = find(tables[1], 'tr');
	assert.strictEqual(rows.length, 3); checks++;
	assert.strictEqual(text(rows[0]), 'Slave device Masters sent buffered dropped by the stream cap masters refused commands updated'); checks++;
	const ms = (t) => new Date(t).toLocaleString();
	assert.strictEqual(text(rows[1]), `scada 10.0.0.5:40001, group 0: started since ${ms(1795358290010)} ` +
		`[fd00::6]:2404, group 1: standby since ${ms(1795358295000)} 1200 7 2 1 3 ${ms(1795358300120)}`); checks++;
	assert.strictEqual(find(rows[1], 'div').length, 2); checks++;
	assert.strictEqual(text(rows[2]), `spare none connected 0 0 0 0 0 ${ms(1795358300000)}`); checks++;
	assert.ok(!/null|undefined|\[object/.test(text(tree))); checks++;
	// Odd slave entries are shown as they are, never thrown on.
	slaveStatus.slaves = { odd: { masters: [ null, { address: 'x' } ], note: 'hi' }, bad: 5 };
	statusText = JSON.stringify(slaveStatus);
	rows = find(find(await v.render(await v.load()), 'table')[1], 'tr');
	assert.strictEqual(text(rows[1]), 'odd - x, group -: standby since - hi -'); checks++;
	slaveStatus.slaves = [];
	statusText = JSON.stringify(slaveStatus);
	assert.strictEqual(find(await v.render(await v.load()), 'table').length, 1); checks++;

	// The TLS devices ("tls"): handshakes, events by kind, the last event; times in ms.
	const tlsStatus = JSON.parse(JSON.stringify(slaveStatus));
	delete tlsStatus.slaves;
	tlsStatus.tls = {
		rtu: { updated_ms: 1795358300120, handshakes: 4, events: { certificate_revoked: 2, certificate_unknown: 1 },
			last: { kind: 'certificate_revoked', peer: '10.0.0.9:19998', subject: 'CN=rtu-old, O=Utility',
				detail: 'revoked by the CRL', at_ms: 1795358299000 } },
		scada: { updated_ms: 1795358300000, handshakes: 1, events: {} }
	};
	statusText = JSON.stringify(tlsStatus);
	tree = await v.render(await v.load());
	assert.strictEqual(find(tree, 'table').length, 2); checks++;
	assert.match(text(tree), /IEC 104 TLS devices/); checks++;
	rows = find(find(tree, 'table')[1], 'tr');
	assert.strictEqual(rows.length, 3); checks++;
	assert.strictEqual(text(rows[0]), 'TLS device handshakes security events last event updated'); checks++;
	assert.strictEqual(text(rows[1]), 'rtu 4 certificate revoked: 2 certificate unknown: 1 certificate revoked, ' +
		`peer 10.0.0.9:19998, subject CN=rtu-old, O=Utility: revoked by the CRL (${ms(1795358299000)}) ${ms(1795358300120)}`); checks++;
	assert.strictEqual(find(rows[1], 'div').length, 2); checks++;
	assert.strictEqual(text(rows[2]), `scada 1 none none ${ms(1795358300000)}`); checks++;
	assert.ok(!/null|undefined|\[object/.test(text(tree))); checks++;
	// With the slaves: both tables, slaves first.
	tlsStatus.slaves = { scada: { masters: [] } };
	statusText = JSON.stringify(tlsStatus);
	tree = await v.render(await v.load());
	assert.strictEqual(find(tree, 'table').length, 3); checks++;
	assert.match(text(tree), /IEC 104 slave devices.*IEC 104 TLS devices/); checks++;
	// Odd TLS entries are shown as they are, never thrown on.
	delete tlsStatus.slaves;
	tlsStatus.tls = { odd: { events: [ 1 ], last: 'x' }, odder: { events: { a: null }, last: { kind: 5 } }, bad: 5 };
	statusText = JSON.stringify(tlsStatus);
	rows = find(find(await v.render(await v.load()), 'table')[1], 'tr');
	assert.strictEqual(rows.length, 3); checks++;
	assert.strictEqual(text(rows[1]), 'odd - 1 x -'); checks++;
	assert.strictEqual(text(rows[2]), 'odder - a: - 5 (-) -'); checks++;
	tlsStatus.tls = [];
	statusText = JSON.stringify(tlsStatus);
	assert.strictEqual(find(await v.render(await v.load()), 'table').length, 1); checks++;

	// Nested under a key, with other top-level fields.
	statusText = JSON.stringify({ updated_ms: 1, applets: { 'iec104-master': { state: 'running', pid: 7, restarts: 0 } } });
	rows = find(await v.render(await v.load()), 'tr');
	assert.strictEqual(rows.length, 2); checks++;
	assert.strictEqual(text(rows[1]), "iec104-master running 7 0"); checks++;

	// Broken JSON is reported, not thrown.
	statusText = '{"mqtt-client": ';
	assert.match(text(await v.render(await v.load())), /not valid JSON/); checks++;

	// The workbook buttons: check (dry run) and import (+ reload), upload removed after.
	const buttons = find(tree, 'button').filter(b => b.attrs.click);
	assert.strictEqual(buttons.length, 2); checks++;
	calls.length = 0;
	await buttons[0].attrs.click();
	assert.deepStrictEqual(calls, [
		[ 'upload', '/tmp/fieldbridge-upload.xlsx' ],
		[ 'exec', '/usr/bin/fieldbridge config import /tmp/fieldbridge-upload.xlsx -o /etc/fieldbridge/config.json --dry-run' ],
		[ 'remove', '/tmp/fieldbridge-upload.xlsx' ]
	]); checks++;
	calls.length = 0;
	await buttons[1].attrs.click();
	assert.deepStrictEqual(calls, [
		[ 'upload', '/tmp/fieldbridge-upload.xlsx' ],
		[ 'exec', '/usr/bin/fieldbridge config import /tmp/fieldbridge-upload.xlsx -o /etc/fieldbridge/config.json' ],
		[ 'exec', '/etc/init.d/fieldbridge reload' ],
		[ 'remove', '/tmp/fieldbridge-upload.xlsx' ]
	]); checks++;
	// A failed import does not reload.
	execResult = { code: 1, stdout: '', stderr: 'Signals!F17 (source_device_alias): no device "rtu9"' };
	calls.length = 0;
	await buttons[1].attrs.click();
	assert.ok(!calls.some(c => c[1] == '/etc/init.d/fieldbridge reload')); checks++;
	assert.match(text(modals[modals.length - 1][1][0]), /rtu9/); checks++;

	console.log(`luci view: ${checks} checks passed`);
})().catch(e => { console.error(e); process.exit(1); });
