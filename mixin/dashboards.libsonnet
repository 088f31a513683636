// The Grafana dashboard (grafana/mailflow.json once rendered). Thresholds that match an alert
// come from _config, so that the colours change where the alerts do.
local text = import 'lib/text.libsonnet';

local datasource = { type: 'prometheus', uid: '${datasource}' };

local grid(x, y, w, h) = { x: x, y: y, w: w, h: h };

// One PromQL query of a panel: a range query for graphs, an instant one (optionally as a
// table) for current values.
local query(refId, expr, legend, instant=false, table=false) = {
  datasource: datasource,
  refId: refId,
  expr: expr,
  legendFormat: legend,
  range: !instant,
  instant: instant,
} + (if table then { format: 'table' } else {});

// Threshold steps from [colour, from] pairs; the first starts at minus infinity (null).
local steps(pairs) = {
  mode: 'absolute',
  steps: [{ color: pair[0], value: pair[1] } for pair in pairs],
};
local plain = steps([['green', null]]);

// Value mappings for a 0/1 series: [text, colour] for 0 and for 1.
local binaryMapping(zero, one) = [{
  type: 'value',
  options: {
    '0': { text: zero[0], color: zero[1] },
    '1': { text: one[0], color: one[1] },
  },
}];

// A colour per code, in the order of the table in README.md.
local codeColours = std.mapWithIndex(
  function(index, pair) { type: 'value', options: { [pair[0]]: { color: pair[1], index: index } } },
  [
    ['ok', 'green'],
    ['4.4.312', 'purple'],
    ['4.4.315', 'orange'],
    ['4.4.316', 'red'],
    ['4.4.317', 'semi-dark-red'],
    ['4.4.318', 'yellow'],
    ['4.7.320', 'blue'],
    ['other', 'text'],
  ],
);

local codeColumn = {
  matcher: { id: 'byName', options: 'code' },
  properties: [
    { id: 'custom.cellOptions', value: { type: 'color-text' } },
    { id: 'mappings', value: codeColours },
  ],
};

local row(title, y) = {
  type: 'row',
  title: title,
  collapsed: false,
  panels: [],
  gridPos: grid(0, y, 24, 1),
};

local panel(type, title, description, gridPos, targets) = {
  type: type,
  title: title,
  description: description,
  datasource: datasource,
  gridPos: gridPos,
  targets: targets,
};

local timeseries(title, description, gridPos, targets, unit, stacking='none', bars=false, min=0, custom={}, thresholds=plain, overrides=[]) =
  panel('timeseries', title, description, gridPos, targets) + {
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: {
          drawStyle: if bars then 'bars' else 'line',
          lineWidth: 1,
          fillOpacity: if bars then 80 else 10,
          showPoints: 'never',
          spanNulls: false,
          stacking: { mode: stacking, group: 'A' },
        } + custom,
        thresholds: thresholds,
      } + (if min == null then {} else { min: min }),
      overrides: overrides,
    },
    options: {
      legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  };

// A table of one instant query: `columns` orders the labels shown, `hidden` are dropped.
local table(title, description, gridPos, target, columns, hidden, renamed={}, overrides=[], sortBy=null) =
  panel('table', title, description, gridPos, [target]) + {
    fieldConfig: {
      defaults: {
        unit: 'short',
        custom: { align: 'auto', cellOptions: { type: 'auto' } },
        thresholds: plain,
      },
      overrides: overrides,
    },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], fields: '' },
    },
    transformations: [{
      id: 'organize',
      options: {
        excludeByName: { [name]: true for name in hidden },
        renameByName: renamed,
        indexByName: { [columns[index]]: index for index in std.range(0, std.length(columns) - 1) },
      },
    }] + (
      if sortBy == null then []
      else [{ id: 'sortBy', options: { sort: [{ field: sortBy, desc: false }] } }]
    ),
  };

// Red for 0, green for 1, as a strip per series.
local stateTimeline(title, description, gridPos, targets, zero, one) =
  panel('state-timeline', title, description, gridPos, targets) + {
    fieldConfig: {
      defaults: {
        custom: { fillOpacity: 80, lineWidth: 0 },
        color: { mode: 'thresholds' },
        thresholds: steps([['red', null], ['green', 1]]),
        mappings: binaryMapping([zero, 'red'], [one, 'green']),
      },
      overrides: [],
    },
    options: {
      showValue: 'never',
      mergeValues: true,
      rowHeight: 0.9,
      legend: { showLegend: false },
    },
  };

local ofConnector = '{connector=~"$connector"}';
local perConnector(metric) = metric + ofConnector;
local labelsNotShown = ['Time', 'job', 'instance', '__name__'];

{
  local config = $._config,

  local panels = [
    row('Delivery', 0),
    table(
      'Current code per connector',
      "The code of each connector's latest probe; for a failing connector also the phase and reason where it stopped and the server's reply code.",
      grid(0, 1, 9, 8),
      query(
        'A',
        'max by (connector, code, phase, reason, reply) (%s == 1) or on (connector) max by (connector, code) (%s == 1)'
        % [perConnector('mailflow_probe_failure_info'), perConnector('mailflow_probe_status')],
        '__auto',
        instant=true,
        table=true,
      ),
      columns=['connector', 'code', 'phase', 'reason', 'reply'],
      hidden=['Time', 'Value'],
      renamed={ reply: 'server reply' },
      overrides=[codeColumn],
      sortBy='connector',
    ),
    panel(
      'stat',
      'Since last delivery',
      'Time since each connector last delivered (code ok).',
      grid(9, 1, 5, 8),
      [query('A', 'time() - max by (connector) (%s)' % perConnector('mailflow_last_success_timestamp_seconds'), '{{connector}}', instant=true)],
    ) + {
      fieldConfig: {
        defaults: {
          unit: 's',
          decimals: 0,
          color: { mode: 'thresholds' },
          thresholds: steps([['green', null], ['orange', 600], ['red', config.queueAgeWarningSeconds]]),
        },
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'background',
        graphMode: 'none',
        textMode: 'value_and_name',
        orientation: 'horizontal',
      },
    },
    panel('text', 'What the codes mean', '', grid(14, 1, 10, 16), []) + {
      options: {
        mode: 'markdown',
        content: importstr 'codes.md',
        code: { language: 'plaintext', showLineNumbers: false },
      },
    },
    stateTimeline(
      'Delivering',
      '1 while the connector delivers (code ok), 0 while it fails.',
      grid(0, 9, 14, 8),
      [query('A', perConnector('mailflow_probe_success'), '{{connector}}')],
      'failing',
      'delivering',
    ),
    timeseries(
      'Failures by code',
      'Failed probes per code, per connector, in each interval.',
      grid(0, 17, 12, 8),
      [query('A', 'sum by (connector, code) (increase(%s[$__rate_interval]))' % perConnector('mailflow_probe_failures_total'), '{{connector}} {{code}}')],
      'short',
      stacking='normal',
      bars=true,
    ),
    timeseries(
      'Failure ratio',
      'Share of probes that failed over the last hour, per connector.',
      grid(12, 17, 12, 8),
      [query(
        'A',
        'sum by (connector) (increase(%s[1h])) / sum by (connector) (increase(%s[1h]))'
        % [perConnector('mailflow_probe_failures_total'), perConnector('mailflow_probes_total')],
        '{{connector}}',
      )],
      'percentunit',
    ),

    row('Queue and retry window', 25),
    panel(
      'bargauge',
      'Retry window used',
      'Age of the oldest message a sender would be holding for the connector, as a share of its retry window. At 100 % queued mail starts to bounce.',
      grid(0, 26, 8, 8),
      [query('A', '%s / %s' % [perConnector('mailflow_queue_age_seconds'), perConnector('mailflow_queue_expiry_seconds')], '{{connector}}', instant=true)],
    ) + {
      fieldConfig: {
        defaults: {
          unit: 'percentunit',
          min: 0,
          max: 1,
          // Yellow from the queue-age warning, as a share of the default 24-hour window.
          thresholds: steps([
            ['green', null],
            ['yellow', std.floor(config.queueAgeWarningSeconds / 86400 * 10000 + 0.5) / 10000],
            ['orange', config.queueExpiryFraction],
            ['red', 1],
          ]),
          color: { mode: 'thresholds' },
        },
        overrides: [],
      },
      options: {
        orientation: 'horizontal',
        displayMode: 'gradient',
        showUnfilled: true,
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      },
    },
    timeseries(
      'Queue age against the retry window',
      'Solid: how long the connector has failed (the age of the oldest queued message). Dashed: its retry window.',
      grid(8, 26, 16, 8),
      [
        query('A', perConnector('mailflow_queue_age_seconds'), '{{connector}} age'),
        query('B', perConnector('mailflow_queue_expiry_seconds'), '{{connector}} retry window'),
      ],
      's',
      overrides=[{
        matcher: { id: 'byFrameRefID', options: 'B' },
        properties: [
          { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
          { id: 'custom.fillOpacity', value: 0 },
        ],
      }],
    ),
    timeseries(
      'Postfix queue by code',
      'Messages in the local Postfix queue matched to each connector, by the code of their delay reason.',
      grid(0, 34, 12, 8),
      [query('A', 'max by (connector, code) (%s)' % perConnector('mailflow_postfix_queue_messages'), '{{connector}} {{code}}')],
      'short',
      stacking='normal',
    ),
    timeseries(
      'Postfix queue: oldest message',
      'Age of the oldest message in the local Postfix queue for each connector.',
      grid(12, 34, 12, 8),
      [query('A', 'max by (connector) (%s)' % perConnector('mailflow_postfix_queue_oldest_age_seconds'), '{{connector}}')],
      's',
    ),

    row('Addresses', 42),
    table(
      'Per-address status',
      'Every address of every connector is probed; the connector delivers while at least one of them does.',
      grid(0, 43, 12, 8),
      query('A', perConnector('mailflow_target_status') + ' == 1', '__auto', instant=true, table=true),
      columns=['connector', 'host', 'address', 'code'],
      hidden=labelsNotShown + ['Value'],
      overrides=[codeColumn],
    ),
    stateTimeline(
      'Per-address delivery',
      '1 while the address completes the exchange, 0 while it fails.',
      grid(12, 43, 12, 8),
      [query('A', perConnector('mailflow_target_success'), '{{connector}} {{address}}')],
      'failing',
      'delivering',
    ),

    row('TLS and certificates', 51),
    table(
      'Certificate days left',
      'Days until the certificate each address presents expires, with its subject, issuer and serial. Measured whatever the connector enforces.',
      grid(0, 52, 16, 8),
      query('A', '(%s - time()) / 86400' % perConnector('mailflow_certificate_not_after_timestamp_seconds'), '__auto', instant=true, table=true),
      columns=['connector', 'address', 'Value', 'subject', 'issuer', 'serial'],
      hidden=labelsNotShown,
      renamed={ Value: 'days left' },
      overrides=[{
        matcher: { id: 'byName', options: 'days left' },
        properties: [
          { id: 'decimals', value: 1 },
          { id: 'custom.cellOptions', value: { type: 'color-background' } },
          {
            id: 'thresholds',
            value: steps([
              ['red', null],
              ['orange', config.certificateCriticalDays],
              ['yellow', config.certificateWarningDays],
              ['green', 30],
            ]),
          },
        ],
      }],
      sortBy='days left',
    ),
    table(
      'Certificate validates',
      'Whether the certificate passes full validation (trusted chain, dates, name), whatever the connector enforces. No on a delivering connector: it works today only because validation is not required.',
      grid(16, 52, 8, 8),
      query('A', perConnector('mailflow_certificate_valid'), '__auto', instant=true, table=true),
      columns=['connector', 'address', 'Value'],
      hidden=labelsNotShown,
      renamed={ Value: 'valid' },
      overrides=[{
        matcher: { id: 'byName', options: 'valid' },
        properties: [
          { id: 'mappings', value: binaryMapping(['no', 'red'], ['yes', 'green']) },
          { id: 'custom.cellOptions', value: { type: 'color-background' } },
        ],
      }],
    ),
    timeseries(
      'Certificate chain days left',
      'Days until the first certificate of the presented chain (leaf or intermediate) expires.',
      grid(0, 60, 12, 8),
      [query('A', '(%s - time()) / 86400' % perConnector('mailflow_certificate_chain_not_after_timestamp_seconds'), '{{connector}} {{address}}')],
      'd',
      min=null,
      custom={ thresholdsStyle: { mode: 'dashed' } },
      thresholds=steps([
        ['red', null],
        ['orange', config.certificateCriticalDays],
        ['green', config.certificateWarningDays],
      ]),
    ),
    table(
      'TLS versions',
      'Protocol version and cipher suite negotiated with each address (absent where no TLS was negotiated).',
      grid(12, 60, 12, 8),
      query('A', perConnector('mailflow_tls_info') + ' == 1', '__auto', instant=true, table=true),
      columns=['connector', 'address', 'version', 'cipher'],
      hidden=labelsNotShown + ['Value'],
    ),
    stateTimeline(
      'Plain-text fallback',
      "Addresses that deliver only after their TLS handshake failed, in plain text over a second connection (opportunistic TLS, as a sending server does). Mail to them is not encrypted today, and they fail with 4.4.317 the day the connector requires TLS. Absent where TLS works or is not offered.",
      grid(0, 68, 24, 6),
      [query('A', perConnector('mailflow_tls_fallback'), '{{connector}} {{address}}')],
      'encrypted',
      'plain text',
    ) + {
      fieldConfig+: {
        defaults+: {
          thresholds: steps([['green', null], ['orange', 1]]),
          mappings: binaryMapping(['encrypted', 'green'], ['plain text', 'orange']),
        },
      },
    },

    row('Probe timing', 74),
    timeseries(
      'Phase timings',
      'How long each phase of the latest probe took (for the preferred successful address).',
      grid(0, 75, 12, 8),
      [query('A', perConnector('mailflow_probe_phase_duration_seconds'), '{{connector}} {{phase}}')],
      's',
    ),
    timeseries(
      'Probe duration',
      'The whole probe, all addresses included.',
      grid(12, 75, 12, 8),
      [query('A', perConnector('mailflow_probe_duration_seconds'), '{{connector}}')],
      's',
    ),

    row('Exporter health', 83),
    table(
      'Exporter build',
      'Version and revision of each running exporter.',
      grid(0, 84, 8, 6),
      query('A', 'mailflow_exporter_build_info', '__auto', instant=true, table=true),
      columns=['instance', 'version', 'revision'],
      hidden=['Time', 'Value', '__name__'],
    ),
    panel(
      'stat',
      'Configuration reload',
      'Whether the last configuration reload succeeded, and when one last did.',
      grid(8, 84, 8, 6),
      [
        query('A', 'mailflow_config_last_reload_successful', '{{instance}} last reload', instant=true),
        query('B', 'mailflow_config_last_reload_success_timestamp_seconds * 1000', '{{instance}} last good reload', instant=true),
      ],
    ) + {
      fieldConfig: {
        defaults: {
          thresholds: steps([['red', null], ['green', 1]]),
          color: { mode: 'thresholds' },
        },
        overrides: [
          {
            matcher: { id: 'byFrameRefID', options: 'A' },
            properties: [{ id: 'mappings', value: binaryMapping(['failed', 'red'], ['ok', 'green']) }],
          },
          {
            matcher: { id: 'byFrameRefID', options: 'B' },
            properties: [
              { id: 'unit', value: 'dateTimeFromNow' },
              { id: 'color', value: { mode: 'fixed', fixedColor: 'text' } },
            ],
          },
        ],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'value',
        graphMode: 'none',
        textMode: 'value_and_name',
        orientation: 'vertical',
      },
    },
    stateTimeline(
      'Scrapes',
      'Whether Prometheus reaches the exporter (/metrics) and each connector\'s probe (/probe).',
      grid(16, 84, 8, 6),
      [
        query('A', 'up{%s}' % config.exporterSelector, 'exporter {{instance}}'),
        query('B', 'up{%s, connector=~"$connector"}' % config.probeSelector, 'probe {{connector}}'),
      ],
      'down',
      'up',
    ),
    timeseries(
      'Probes not run',
      "Probes that found no free connection before their deadline (--probe.max-connections and --probe.max-connections-per-address), per connector. They are no connector failure: their scrapes fail instead (HTTP 503).",
      grid(0, 90, 24, 6),
      [query(
        'A',
        'sum by (connector) (increase(mailflow_exporter_probe_slot_timeouts_total{%s, connector=~"$connector"}[$__rate_interval]))' % config.exporterSelector,
        '{{connector}}',
      )],
      'short',
      bars=true,
    ),
  ],

  grafanaDashboards+:: {
    'mailflow.json': {
      id: null,
      uid: config.dashboardUID,
      title: config.dashboardTitle,
      description: 'Mail connectors probed by mailflow_exporter: codes, queue age against the retry window, addresses, certificates.',
      tags: ['mail', 'smtp', 'mailflow_exporter'],
      timezone: 'browser',
      editable: true,
      graphTooltip: 1,
      schemaVersion: 39,
      version: 1,
      refresh: '1m',
      time: { from: 'now-24h', to: 'now' },
      timepicker: {},
      fiscalYearStartMonth: 0,
      liveNow: false,
      weekStart: '',
      links: [],
      annotations: {
        list: [{
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        }],
      },
      templating: {
        list: [
          {
            name: 'datasource',
            label: 'Data source',
            type: 'datasource',
            query: 'prometheus',
            current: {},
            hide: 0,
            includeAll: false,
            multi: false,
            options: [],
            refresh: 1,
            regex: '',
            skipUrlSync: false,
          },
          {
            name: 'connector',
            label: 'Connector',
            type: 'query',
            datasource: datasource,
            definition: 'label_values(mailflow_probe_success, connector)',
            query: {
              qryType: 1,
              query: 'label_values(mailflow_probe_success, connector)',
              refId: 'PrometheusVariableQueryEditor-VariableQuery',
            },
            current: {},
            hide: 0,
            includeAll: true,
            allValue: '.*',
            multi: true,
            options: [],
            refresh: 2,
            regex: '',
            skipUrlSync: false,
            sort: 1,
          },
        ],
      },
      panels: std.mapWithIndex(function(index, panel) panel + { id: index + 1 }, panels),
    },
  },
}
