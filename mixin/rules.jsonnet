// alerts/mailflow.rules.yml, as text: jsonnet -J mixin -S [--tla-code-file config=FILE] mixin/rules.jsonnet
// (scripts/render-mixin runs it; `config` is merged into _config).
function(config={}) (import 'lib/render.libsonnet')(config).rules
