// A customised _config for the tests (tests/rules.rs renders the mixin with it and runs
// custom.rules.test.yml against the result): other job names, every threshold changed, and a
// runbook published elsewhere.
{
  probeSelector: 'job="mail-probe"',
  exporterSelector: 'job="mail-exporter"',
  runbookURLPattern: 'https://wiki.example.com/mail/runbook.html#%s',
  queueAgeWarningSeconds: 1800,
  queueExpiryFraction: 0.5,
  certificateWarningDays: 21,
  certificateCriticalDays: 7,
  // Exchange Online's threshold in older tenants.
  postfixQueueMessages: 200,
  postfixQueueAgeSeconds: 1800,
  dashboardUID: 'mail-flow-custom',
  dashboardTitle: 'Mail flow (custom)',
}
