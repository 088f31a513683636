// The mailflow_exporter monitoring mixin: alerting rules and a Grafana dashboard, both driven by
// _config (config.libsonnet). Render them with scripts/render-mixin, or import this file into
// your own jsonnet and override _config (see README, "Monitoring mixin").
(import 'config.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'dashboards.libsonnet')
