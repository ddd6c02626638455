'use strict';
'require view';
'require form';
'require fs';
'require ui';
'require poll';
'require dom';

/*
 * LuCI page of fieldbridge (Services -> fieldbridge).
 *
 * - The uci settings of /etc/config/fieldbridge (section 'main'): enabled, log_level,
 *   config_file. "Save & Apply" commits them; procd's reload trigger applies them.
 * - The state of each protocol applet, read from the supervisor's status file and refreshed
 *   every 5 s. Rendered generically: one row per applet entry (the supervisor's "applets"
 *   object, or any object of objects), the usual columns first (state, pid, restarts, since,
 *   message), then every other key; Unix times as dates, lists joined, last_exit by its
 *   description. A line about the supervisor itself when the file has one.
 * - Under it, while the IEC 104 slave applet runs, one row per slave device (the file's
 *   "slaves"): its connected masters (address, redundancy group, started or standby, since
 *   when), then its counters in the file's order (sent, buffered, dropped by the stream cap,
 *   ...) and when the applet wrote them. Times there are Unix milliseconds (`*_ms`).
 * - Under it, while an IEC 104 applet runs, one row per device with TLS (the file's "tls"):
 *   its successful handshakes, its security events by kind, and the last one (kind, peer,
 *   certificate subject, detail, when).
 * - Upload of the Excel workbook: checked with `fieldbridge config import --dry-run`, then
 *   imported (`fieldbridge config import ... -o /etc/fieldbridge/config.json`) and the service
 *   reloaded. The rpcd ACL allows exactly these command lines and nothing else, which is why the
 *   paths below are constants.
 */

var STATUS_FILE = '/var/run/fieldbridge/status.json';
var UPLOAD_FILE = '/tmp/fieldbridge-upload.xlsx';
var CONFIG_JSON = '/etc/fieldbridge/config.json';
var FIELDBRIDGE = '/usr/bin/fieldbridge';
var INIT_SCRIPT = '/etc/init.d/fieldbridge';
/* Columns shown first, in this order; any other key of an applet's entry follows. */
var KNOWN_COLUMNS = [ 'state', 'pid', 'restarts', 'since', 'message' ];
/* Keys holding Unix times in seconds (the supervisor's status file format). */
var TIME_KEYS = [ 'since', 'next_start', 'updated', 'started', 'config_loaded', 'at' ];
/* Keys holding Unix times in milliseconds (a slave or TLS device's entry). */
var MS_TIME_KEYS = [ 'updated_ms', 'since_ms', 'at_ms' ];
/* Column titles of the slave counters that need more than their key. */
var SLAVE_COUNTER_TITLES = { dropped: _('dropped by the stream cap'), refused: _('masters refused') };

function importArgs(dryRun) {
	var args = [ 'config', 'import', UPLOAD_FILE, '-o', CONFIG_JSON ];
	if (dryRun)
		args.push('--dry-run');
	return args;
}

function readStatus() {
	return L.resolveDefault(fs.read(STATUS_FILE), null).then(function(text) {
		if (text == null)
			return { error: _('No status file yet: the service is stopped or starting.') };
		try {
			return { data: JSON.parse(text) };
		}
		catch (e) {
			return { error: _('The status file is not valid JSON: %s').format(e.message) };
		}
	});
}

/* The per-applet entries: the supervisor's {"version": 1, "supervisor": {...}, "applets":
 * {...}}; else the first member that maps names to objects; else the object itself. */
function applets(data) {
	if (data == null || typeof(data) != 'object' || Array.isArray(data))
		return [];

	if (data.applets != null && typeof(data.applets) == 'object' && !Array.isArray(data.applets))
		return entries(data.applets);

	var nested = Object.keys(data).filter(function(k) {
		var v = data[k];
		return v != null && typeof(v) == 'object' && !Array.isArray(v) &&
			Object.keys(v).length > 0 && Object.keys(v).every(function(n) {
				return v[n] != null && typeof(v[n]) == 'object';
			});
	});
	return entries(nested.length ? data[nested[0]] : data);
}

function entries(table) {
	return Object.keys(table).sort().filter(function(name) {
		return table[name] != null && typeof(table[name]) == 'object';
	}).map(function(name) {
		return { name: name, entry: table[name] };
	});
}

function cellText(key, v) {
	if (v == null || v === '')
		return '-';
	if (TIME_KEYS.indexOf(key) >= 0 && typeof(v) == 'number' && v > 1e9)
		return new Date(v * 1000).toLocaleString();
	if (MS_TIME_KEYS.indexOf(key) >= 0 && typeof(v) == 'number' && v > 1e12)
		return new Date(v).toLocaleString();
	if (Array.isArray(v))
		return v.map(function(x) { return cellText('', x); }).join('; ');
	if (typeof(v) == 'object')
		return (typeof(v.description) == 'string') ? v.description : JSON.stringify(v);
	return String(v);
}

/* One line about the supervisor itself, when the file has that part. */
function supervisorLine(data) {
	var sv = (data != null && typeof(data) == 'object') ? data.supervisor : null;
	if (sv == null || typeof(sv) != 'object')
		return null;
	var parts = [ _('Supervisor') + ': ' + (sv.running === false ? _('stopped') : _('running')) ];
	if (sv.pid != null) parts.push(_('pid') + ' ' + sv.pid);
	if (sv.config) parts.push(_('config') + ' ' + sv.config);
	if (sv.updated != null) parts.push(_('updated') + ' ' + cellText('updated', sv.updated));
	var line = E('p', {}, parts.join(', '));
	if (sv.config_error)
		return E('div', {}, [ line, E('p', { 'class': 'alert-message warning' }, _('Configuration error: %s').format(cellText('', sv.config_error))) ]);
	return line;
}

/* A connected master: "10.0.0.5:40001, group 0: started since <date>". */
function masterText(m) {
	if (m == null || typeof(m) != 'object')
		return cellText('', m);
	return _('%s, group %s: %s since %s').format(cellText('', m.address), cellText('', m.group),
		m.started === true ? _('started') : _('standby'), cellText('since_ms', m.since_ms));
}

/* The table of the slave devices (the file's "slaves"), or null when there is none. */
function renderSlaves(data) {
	var slaves = (data != null && typeof(data) == 'object') ? data.slaves : null;
	if (slaves == null || typeof(slaves) != 'object' || Array.isArray(slaves))
		return null;
	var rows = entries(slaves);
	if (!rows.length)
		return null;

	var counters = [];
	rows.forEach(function(r) {
		Object.keys(r.entry).forEach(function(k) {
			if (k != 'masters' && MS_TIME_KEYS.indexOf(k) < 0 && counters.indexOf(k) < 0)
				counters.push(k);
		});
	});
	var titles = [ _('Slave device'), _('Masters') ].concat(counters.map(function(c) {
		return SLAVE_COUNTER_TITLES[c] || c.replace(/_/g, ' ');
	}), [ _('updated') ]);

	var head = E('tr', { 'class': 'tr table-titles' }, titles.map(function(t) { return E('th', { 'class': 'th' }, t); }));
	return E('table', { 'class': 'table' }, [ head ].concat(rows.map(function(r) {
		var masters = Array.isArray(r.entry.masters) ? r.entry.masters : [];
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, E('strong', {}, r.name)),
			E('td', { 'class': 'td' }, masters.length
				? masters.map(function(m) { return E('div', {}, masterText(m)); })
				: _('none connected'))
		].concat(counters.map(function(c) {
			return E('td', { 'class': 'td' }, cellText(c, r.entry[c]));
		}), [ E('td', { 'class': 'td' }, cellText('updated_ms', r.entry.updated_ms)) ]));
	})));
}

/* Security events by kind ({"certificate_revoked": 2}): "certificate revoked: 2" each. */
function tlsEvents(events) {
	if (events == null || typeof(events) != 'object' || Array.isArray(events))
		return cellText('', events);
	var kinds = Object.keys(events).sort();
	if (!kinds.length)
		return _('none');
	return kinds.map(function(k) {
		return E('div', {}, '%s: %s'.format(k.replace(/_/g, ' '), cellText('', events[k])));
	});
}

/* The last security event: "certificate revoked, peer 10.0.0.9:19998, subject CN=x: detail
 * (<date>)". */
function tlsLast(last) {
	if (last == null)
		return _('none');
	if (typeof(last) != 'object' || Array.isArray(last))
		return cellText('', last);
	var parts = [ typeof(last.kind) == 'string' ? last.kind.replace(/_/g, ' ') : cellText('', last.kind) ];
	if (last.peer) parts.push(_('peer %s').format(cellText('', last.peer)));
	if (last.subject) parts.push(_('subject %s').format(cellText('', last.subject)));
	var line = parts.join(', ');
	if (last.detail) line += ': ' + cellText('', last.detail);
	return line + ' (' + cellText('at_ms', last.at_ms) + ')';
}

/* The table of the TLS devices (the file's "tls"), or null when there is none. */
function renderTls(data) {
	var tls = (data != null && typeof(data) == 'object') ? data.tls : null;
	if (tls == null || typeof(tls) != 'object' || Array.isArray(tls))
		return null;
	var rows = entries(tls);
	if (!rows.length)
		return null;

	var titles = [ _('TLS device'), _('handshakes'), _('security events'), _('last event'), _('updated') ];
	var head = E('tr', { 'class': 'tr table-titles' }, titles.map(function(t) { return E('th', { 'class': 'th' }, t); }));
	return E('table', { 'class': 'table' }, [ head ].concat(rows.map(function(r) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td' }, E('strong', {}, r.name)),
			E('td', { 'class': 'td' }, cellText('', r.entry.handshakes)),
			E('td', { 'class': 'td' }, tlsEvents(r.entry.events)),
			E('td', { 'class': 'td' }, tlsLast(r.entry.last)),
			E('td', { 'class': 'td' }, cellText('updated_ms', r.entry.updated_ms))
		]);
	})));
}

function renderStatus(status) {
	if (status.error)
		return E('p', { 'class': 'cbi-value-description' }, status.error);

	var rows = applets(status.data);
	var sv = supervisorLine(status.data);
	if (!rows.length)
		return E('div', {}, [ sv || '', E('p', { 'class': 'cbi-value-description' }, _('No protocol is configured.')) ]);

	var extra = [];
	rows.forEach(function(r) {
		Object.keys(r.entry).forEach(function(k) {
			if (KNOWN_COLUMNS.indexOf(k) < 0 && extra.indexOf(k) < 0)
				extra.push(k);
		});
	});
	var columns = KNOWN_COLUMNS.filter(function(c) {
		return rows.some(function(r) { return r.entry[c] != null; });
	}).concat(extra.sort());

	var head = E('tr', { 'class': 'tr table-titles' }, [ E('th', { 'class': 'th' }, _('Protocol')) ].concat(
		columns.map(function(c) { return E('th', { 'class': 'th' }, c.replace(/_/g, ' ')); })));

	var table = E('table', { 'class': 'table' }, [ head ].concat(rows.map(function(r) {
		return E('tr', { 'class': 'tr' }, [ E('td', { 'class': 'td' }, E('strong', {}, r.name)) ].concat(
			columns.map(function(c) { return E('td', { 'class': 'td' }, cellText(c, r.entry[c])); })));
	})));
	var slaves = renderSlaves(status.data);
	var tls = renderTls(status.data);
	if (!sv && !slaves && !tls)
		return table;
	return E('div', {}, [ sv, table ].concat(slaves ? [ E('h4', _('IEC 104 slave devices')), slaves ] : [],
		tls ? [ E('h4', _('IEC 104 TLS devices')), tls ] : []).filter(function(n) {
		return n != null;
	}));
}

function showOutput(title, res) {
	var out = [ res.stdout || '', res.stderr || '' ].join('\n').trim();
	ui.showModal(title, [
		E('pre', { 'style': 'white-space:pre-wrap;max-height:30em;overflow:auto' }, out || _('(no output)')),
		E('div', { 'class': 'right' }, E('button', { 'class': 'btn', 'click': ui.hideModal }, _('Close')))
	]);
}

function importWorkbook(dryRun) {
	return ui.uploadFile(UPLOAD_FILE).then(function() {
		return fs.exec(FIELDBRIDGE, importArgs(dryRun));
	}).then(function(res) {
		var ok = (res.code === 0);
		var done = (!dryRun && ok) ? fs.exec(INIT_SCRIPT, [ 'reload' ]) : Promise.resolve();
		return done.then(function() {
			showOutput(dryRun ? (ok ? _('Workbook is valid') : _('Workbook has errors'))
			                  : (ok ? _('Workbook imported, service reloaded') : _('Import failed: nothing was changed')), res);
		});
	}).catch(function(e) {
		if (e && e.message)
			ui.addNotification(null, E('p', _('Workbook upload failed: %s').format(e.message)), 'error');
	}).finally(function() {
		return L.resolveDefault(fs.remove(UPLOAD_FILE), null);
	});
}

return view.extend({
	load: function() {
		return readStatus();
	},

	render: function(status) {
		var m, s, o;

		m = new form.Map('fieldbridge', _('fieldbridge'),
			_('IEC 60870-5-104 and Modbus to MQTT protocol gateway.'));

		s = m.section(form.NamedSection, 'main', 'fieldbridge', _('Service'));
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enable'),
			_('Run the gateway. Off stops every protocol.'));
		o.rmempty = false;
		o.default = '1';

		o = s.option(form.ListValue, 'log_level', _('Log level'));
		[ 'error', 'warn', 'info', 'debug', 'trace' ].forEach(function(l) { o.value(l); });
		o.default = 'info';

		o = s.option(form.Value, 'config_file', _('Configuration file'),
			_('The JSON configuration the supervisor reads. A workbook upload writes %s.').format(CONFIG_JSON));
		o.placeholder = CONFIG_JSON;
		o.rmempty = false;
		o.validate = function(sid, v) {
			return (/^\/[^\0]*\.json$/.test(v) && v.indexOf('/../') < 0) ? true : _('An absolute path ending in .json');
		};

		var statusBox = E('div', { 'id': 'fieldbridge-status' }, renderStatus(status));
		poll.add(function() {
			return readStatus().then(function(st) {
				var box = document.getElementById('fieldbridge-status');
				if (box)
					dom.content(box, renderStatus(st));
			});
		}, 5);

		return m.render().then(function(mapEl) {
			return E([], [
				mapEl,
				E('div', { 'class': 'cbi-section' }, [
					E('h3', _('Protocol status')),
					statusBox
				]),
				E('div', { 'class': 'cbi-section' }, [
					E('h3', _('Configuration workbook')),
					E('p', { 'class': 'cbi-value-description' },
						_('Upload the Excel workbook (sheets Devices and Signals). "Check" validates it and lists every error with its sheet, row and column; "Import" also writes %s (only when valid) and reloads the service.').format(CONFIG_JSON)),
					E('div', {}, [
						E('button', { 'class': 'cbi-button cbi-button-neutral', 'click': ui.createHandlerFn(this, importWorkbook, true) }, _('Check workbook…')),
						' ',
						E('button', { 'class': 'cbi-button cbi-button-apply', 'click': ui.createHandlerFn(this, importWorkbook, false) }, _('Import workbook…'))
					])
				])
			]);
		});
	}
});
