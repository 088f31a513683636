// Everything an operator may want to change in the alerts and the dashboard. Override it in
// your own jsonnet file:
//
//   (import 'mailflow_exporter/mixin/mixin.libsonnet') + {
//     _config+:: { probeSelector: 'job="mail-probe"', certificateWarningDays: 21 },
//   }
//
// or pass an object to scripts/render-mixin --config FILE (see README, "Monitoring mixin").
{
  _config+:: {
    // Label matchers of the scrape job of /probe (one target per connector, discovered through
    // /sd) and of the job of /metrics (the exporter itself and the Postfix queue), as named in
    // config/prometheus.yml.
    probeSelector: 'job="mailflow_probe"',
    exporterSelector: 'job="mailflow_exporter"',

    // Every alert's runbook_url: `%s` becomes the alert's anchor in docs/runbook.md (its name
    // in lower case). The default is the runbook's path in this repository and in the source
    // package; point it at the place your on-call people can open, e.g.
    // 'https://git.example.com/mail/mailflow_exporter/-/blob/main/docs/runbook.md#%s'.
    runbookURLPattern: 'docs/runbook.md#%s',

    // MailflowQueueAgeHigh: a connector has not delivered for this long.
    queueAgeWarningSeconds: 3600,
    // MailflowQueueNearExpiry: the queue age has reached this share of the retry window.
    queueExpiryFraction: 0.75,

    // Leaf and chain certificate alerts: days before expiry for the warning and the critical one.
    certificateWarningDays: 14,
    certificateCriticalDays: 3,

    // MailflowPostfixQueueDelayed, after Exchange Online's "Messages have been delayed" (2,000 or
    // more messages queued for over an hour): this many messages waiting for one connector in
    // the local Postfix queue while the oldest of them has waited this long.
    postfixQueueMessages: 2000,
    postfixQueueAgeSeconds: 3600,

    // The Grafana dashboard.
    dashboardUID: 'mailflow-exporter',
    dashboardTitle: 'Mail flow',
  },
}
