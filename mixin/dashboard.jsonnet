// grafana/mailflow.json: jsonnet -J mixin [--tla-code-file config=FILE] mixin/dashboard.jsonnet
// (scripts/render-mixin runs it; `config` is merged into _config).
function(config={}) (import 'lib/render.libsonnet')(config).dashboard
