// The two rendered files, for the mixin with `config` merged into its _config
// (config.libsonnet): `rules`, the text of alerts/mailflow.rules.yml, and `dashboard`, the object
// of grafana/mailflow.json. rules.jsonnet and dashboard.jsonnet hand them to jsonnet's output.
local text = import 'text.libsonnet';
local yaml = import 'yaml.libsonnet';

// The defaults, to check a customised configuration against: a misspelt key or a threshold
// given as a string would otherwise be ignored or break the rules far from its cause.
local defaults = (import '../config.libsonnet')._config;

function(config)
  local unknown = [key for key in std.objectFields(config) if !std.objectHas(defaults, key)];
  local mistyped = [
    '%s is a %s, not a %s' % [key, std.type(config[key]), std.type(defaults[key])]
    for key in std.objectFields(config)
    if std.objectHas(defaults, key) && std.type(config[key]) != std.type(defaults[key])
  ];
  assert unknown == [] : 'unknown _config keys: %s; the keys are: %s' % [std.join(', ', unknown), std.join(', ', std.objectFields(defaults))];
  assert mistyped == [] : 'wrong types in _config: ' + std.join('; ', mistyped);
  local mixin = (import '../mixin.libsonnet') + { _config+:: config };
  local c = mixin._config;
  {
    rules: yaml.document(mixin.prometheusAlerts, |||
      Alerting rules for mailflow_exporter, rendered from the monitoring mixin (mixin/) by
      scripts/render-mixin. Edit mixin/*.libsonnet or override its _config, not this file: the
      test suite fails when this file differs from what the mixin renders.

      Load with `rule_files:` in prometheus.yml (see config/prometheus.yml) and check with
        promtool check rules alerts/mailflow.rules.yml
        promtool test rules alerts/mailflow.rules.test.yml

      Scrape jobs assumed (as in config/prometheus.yml):
        %(probeSelector)s scrapes /probe?connector=NAME, one target per connector (HTTP SD)
        %(exporterSelector)s scrapes /metrics (the exporter's own metrics, Postfix queue)

      Severity ladder: a failing connector first raises the alert named after its code (warning,
      after 5 minutes); the queue-age alerts then escalate as held mail approaches the retry window
      (warning after %(queueAge)s, critical at %(fraction)s of the window and once messages start to
      bounce). The tiers overlap on purpose; config/alertmanager.yml shows the inhibit rules that
      mute the lower tier.

      Every runbook_url points at the section of docs/runbook.md whose heading is the alert name
      (runbookURLPattern: %(runbook)s).
    ||| % c {
      queueAge: text.duration(c.queueAgeWarningSeconds),
      fraction: text.percent(c.queueExpiryFraction),
      runbook: c.runbookURLPattern,
    }),
    dashboard: mixin.grafanaDashboards['mailflow.json'],
  }
