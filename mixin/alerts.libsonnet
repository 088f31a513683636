// The alerting rules. Every threshold and job selector comes from _config (config.libsonnet).
//
// Each description has three lines: what happened, "Usual causes: ...", "What to do: ...".
local text = import 'lib/text.libsonnet';

// A comment above a group or rule in the rendered file (a hidden field: consumers of
// prometheusAlerts never see it).
local comment(lines) = { comment:: std.rstripChars(lines, '\n') };

// The phase, reason and server reply of a failing connector, from mailflow_probe_failure_info,
// as a sentence (nothing when the series is missing).
local failureInfo =
  '{{ with printf "mailflow_probe_failure_info{connector=%q,code=%q}" $labels.connector $labels.code | query }}'
  + '{{ with . | first }} Phase {{ .Labels.phase }}, reason {{ .Labels.reason }}'
  + '{{ with .Labels.reply }}, server reply {{ . }}{{ end }}.{{ end }}{{ end }}';

// "... expires in 2.5 days" or "... has already expired", for a value in days.
local daysLeft = '{{ if ge $value 0.0 }}expires in {{ printf "%.1f" $value }} days{{ else }}has already expired{{ end }}';

local connector = 'Connector {{ $labels.connector }}';

local describe(what, causes, todo) =
  std.join('\n', [what, 'Usual causes: ' + causes, 'What to do: ' + todo]);

{
  local config = $._config,

  local alert(name, expr, forDuration, severity, summary, description, labels={}) = {
    alert: name,
    expr: expr,
    'for': forDuration,
    labels: { severity: severity } + labels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: std.strReplace(config.runbookURLPattern, '%s', text.anchor(name)),
    },
  },

  // One alert per failure code, after 5 minutes; `what` continues "Connector NAME ".
  local codeAlert(name, code, summary, what, causes, todo) =
    alert(
      name,
      'mailflow_probe_status{code="%s"} == 1' % code,
      '5m',
      'warning',
      summary,
      describe(connector + ' ' + what + failureInfo, causes, todo),
      { code: code },
    ),

  // The leaf certificate's expiry within `days`.
  local leafCertificateAlert(name, days, severity, causes, todo) =
    alert(
      name,
      '(mailflow_certificate_not_after_timestamp_seconds - time()) / 86400 < ' + text.number(days),
      '15m',
      severity,
      'Certificate of {{ $labels.address }} (connector {{ $labels.connector }}) expires within %s days' % text.number(days),
      describe(
        'The certificate that {{ $labels.address }} presents to connector {{ $labels.connector }} ' + daysLeft
        + ' (subject {{ $labels.subject }}, issuer {{ $labels.issuer }}, serial {{ $labels.serial }}).',
        causes,
        todo,
      ),
    ),

  // The chain's earliest expiry within `days`, where it comes before the leaf's.
  local chainCertificateAlert(name, days, severity, causes, todo) =
    alert(
      name,
      std.join('\n', [
        '(mailflow_certificate_chain_not_after_timestamp_seconds - time()) / 86400 < ' + text.number(days),
        '  and on (job, instance, connector, address)',
        '(',
        '  mailflow_certificate_chain_not_after_timestamp_seconds',
        '    < on (job, instance, connector, address)',
        '  min by (job, instance, connector, address) (mailflow_certificate_not_after_timestamp_seconds)',
        ')',
      ]),
      '15m',
      severity,
      'Certificate chain of {{ $labels.address }} (connector {{ $labels.connector }}) expires within %s days' % text.number(days),
      describe(
        "A certificate in the chain that {{ $labels.address }} presents to connector {{ $labels.connector }} (not the server's own certificate) " + daysLeft + '.',
        causes,
        todo,
      ),
    ),

  prometheusAlerts+:: {
    groups+: [
      comment(|||
        One alert per failure code. mailflow_probe_status is a state set: for every connector
        exactly one of its code series is 1. The phase, reason and server reply come from
        mailflow_probe_failure_info and go into the description only, so that a change of reason
        during an outage neither resets `for:` nor opens a second alert.
      |||) + {
        name: 'mailflow-codes',
        rules: [
          codeAlert(
            'MailflowDnsQueryFailed',
            '4.4.312',
            connector + ' cannot resolve its destination (4.4.312)',
            'has not delivered for at least 5 minutes because the DNS lookup of its destination fails; mail for it is being held in the queue.',
            "an outage or mistake at the DNS provider hosting the destination's zone, a lapsed domain registration that took the MX record with it, or an MX record changed so recently that resolvers still hand out the cached old answer.",
            'look the smart host or MX name up yourself and take the fault to whoever runs that DNS zone; if the destination belongs to a partner, contact the partner.',
          ),
          codeAlert(
            'MailflowConnectionTimedOut',
            '4.4.315',
            connector + ' cannot open a TCP connection to its destination (4.4.315)',
            'has not delivered for at least 5 minutes because TCP connections to its destination never complete; mail for it is being held in the queue.',
            "the destination server (or the network in front of it) is down, the connector's smart host points at an address where nothing listens, or the destination moved to new addresses or a new provider and the connector was not updated.",
            "work out which case applies: check that the server is up, compare the smart host setting with the server's real address, and ask about recent network changes; if the destination belongs to a partner, contact the partner.",
          ),
          codeAlert(
            'MailflowConnectionRefused',
            '4.4.316',
            connector + ' is refused by its destination (4.4.316)',
            'has not delivered for at least 5 minutes because the destination actively refuses TCP connections on the SMTP port; mail for it is being held in the queue.',
            "a firewall rejects the sending side's IP addresses on port 25, or the on-premises mail server was switched off on purpose after a migration.",
            'let the sending IP ranges through to port 25. If the server was retired deliberately, disable or delete the connector (or turn the accepted domain from Internal Relay into Authoritative) so that mail to unknown recipients is rejected at once instead of waiting in the queue; if the destination belongs to a partner, contact the partner.',
          ),
          codeAlert(
            'MailflowCannotConnectToRemoteServer',
            '4.4.317',
            connector + ' reaches its destination, which then refuses to talk (4.4.317)',
            "has not delivered for at least 5 minutes: the server accepts the TCP connection but then answers with an error, or cannot meet the connector's TLS requirements; mail for it is being held in the queue.",
            'the server reports itself unavailable (a 421 or 5xx greeting or EHLO reply), or the connector insists on TLS while the server does not advertise STARTTLS, rejects it, or fails the TLS handshake.',
            "check the server's TLS setup and certificate together with the connector's TLS settings; if the destination belongs to a partner, contact the partner.",
          ),
          codeAlert(
            'MailflowConnectionClosedAbruptly',
            '4.4.318',
            connector + ' loses its SMTP session midway (4.4.318)',
            'has not delivered for at least 5 minutes because the SMTP session starts and is then cut off or stops answering; mail for it is being held in the queue.',
            'a firewall that inspects SMTP and mangles the session, a server that hangs, crashes or runs out of resources, or an unreliable network between the two sides.',
            "find out which case applies: look at the server's health and logs and at any SMTP inspection on the path, and hand network faults to the network team; if the destination belongs to a partner, contact the partner.",
          ),
          codeAlert(
            'MailflowCertificateValidationFailed',
            '4.7.320',
            connector + " rejects its destination's certificate (4.7.320)",
            "has not delivered for at least 5 minutes because the server's certificate does not pass the validation the connector requires; mail for it is being held in the queue.",
            'the certificate has expired, it does not carry the name the connector expects, or it is not (or no longer) trusted, for example because its issuer is unknown.',
            "renew or replace the certificate, or correct the connector's TLS settings, so that the held mail can leave; if the destination belongs to a partner, contact the partner.",
          ),
          codeAlert(
            'MailflowStarttlsNotSupported',
            '4.7.321',
            connector + ' gets no TLS from a destination that requires it (4.7.321)',
            "has not delivered for at least 5 minutes: the destination's MTA-STS policy is in enforce mode, so TLS is required, but the server does not offer STARTTLS, refuses it, or fails the TLS handshake; sending servers that honour the policy hold the mail instead of sending it in plain text.",
            'STARTTLS switched off or broken on the server, a certificate or key that the server can no longer load, a protocol or cipher setup the sender cannot agree to, or a device in the path that strips STARTTLS from the EHLO reply.',
            "restore STARTTLS on the server and check it with openssl s_client -starttls smtp; if TLS cannot come back quickly, the destination's owner can switch the policy to testing (and change the id of the _mta-sts record) so that mail flows meanwhile; if the destination belongs to a partner, contact the partner.",
          ),
          codeAlert(
            'MailflowOtherError',
            'other',
            connector + ' fails with an unclassified error',
            'has failed every probe for at least 5 minutes with an error outside the connection and certificate codes, such as a rejected MAIL FROM or RCPT TO or a server that breaks the SMTP protocol.',
            "the destination refuses the probe's sender or recipient address, or the server sends malformed or oversized replies.",
            "read the server's reply to learn what the destination objects to, then fix the destination environment or the connector's configuration.",
          ),
        ],
      },

      comment('A connector with several addresses keeps delivering while one of them is broken.') + {
        name: 'mailflow-addresses',
        rules: [
          alert(
            'MailflowConnectorDegraded',
            std.join('\n', [
              'mailflow_target_success == 0',
              '  and on (job, instance, connector)',
              'mailflow_probe_success == 1',
            ]),
            '15m',
            'warning',
            connector + ' delivers, but address {{ $labels.address }} fails',
            describe(
              connector + ' still delivers, but its address {{ $labels.address }} (from {{ $labels.host }}) has failed for at least 15 minutes'
              + '{{ with printf "mailflow_target_status{connector=%q,host=%q,address=%q} == 1" $labels.connector $labels.host $labels.address | query }}'
              + '{{ with . | first }} with code {{ .Labels.code }}{{ end }}{{ end }}'
              + '. Senders fall back to the remaining addresses, so nothing is held yet, but the connector has lost its redundancy.',
              'a secondary smart host or MX host that is down, retired or firewalled, or a DNS record that still lists an address which no longer serves mail.',
              "probe the connector by hand to see where that address fails, then repair the server or remove the stale address from DNS or from the connector's smart hosts.",
            ),
          ),
        ],
      },

      comment(|||
        mailflow_queue_age_seconds is the age of the oldest message a sender would be holding for
        the connector (time since the first failed probe of the current streak; 0 while it
        delivers). Compared with the connector's retry window it says how close mail is to bouncing.
      |||) + {
        name: 'mailflow-queue',
        rules: [
          alert(
            'MailflowQueueAgeHigh',
            'mailflow_queue_age_seconds >= ' + text.number(config.queueAgeWarningSeconds),
            '1m',
            'warning',
            connector + ' has held mail for {{ $value | humanizeDuration }}',
            describe(
              connector + ' has not delivered for {{ $value | humanizeDuration }}, so the oldest message queued for it is that old.'
              + '{{ with printf "mailflow_queue_expiry_seconds{connector=%q}" $labels.connector | query }}'
              + '{{ with . | first }} Queued messages bounce once they are {{ .Value | humanizeDuration }} old.{{ end }}{{ end }}',
              "the failure reported by this connector's code alert (MailflowDnsQueryFailed, MailflowConnectionTimedOut and the others), which has not been fixed for "
              + text.duration(config.queueAgeWarningSeconds) + '.',
              'follow the runbook of that code alert; once the connector delivers again the queue drains by itself.',
            ),
          ),
          alert(
            'MailflowQueueNearExpiry',
            std.join('\n', [
              'mailflow_queue_age_seconds >= ' + text.number(config.queueExpiryFraction) + ' * mailflow_queue_expiry_seconds',
              '  and',
              'mailflow_queue_age_seconds > 0',
            ]),
            '1m',
            'critical',
            'Mail for connector {{ $labels.connector }} is close to bouncing',
            describe(
              connector + ' has not delivered for {{ $value | humanizeDuration }}, ' + text.percent(config.queueExpiryFraction) + ' or more of its retry window.'
              + '{{ with printf "mailflow_queue_expiry_seconds{connector=%q} - mailflow_queue_age_seconds{connector=%q}" $labels.connector $labels.connector | query }}'
              + '{{ with . | first }} The oldest queued messages start to return to their senders as non-delivery reports in {{ .Value | humanizeDuration }}.{{ end }}{{ end }}',
              "the failure reported by this connector's code alert has lasted for most of the retry window.",
              "restore delivery now (see the code alert's runbook); if that cannot happen in time, consider rerouting the mail or, where the sending system allows it, extending the retry window before messages expire.",
            ),
          ),
          alert(
            'MailflowQueueExpired',
            std.join('\n', [
              'mailflow_queue_age_seconds >= mailflow_queue_expiry_seconds',
              '  and',
              'mailflow_queue_age_seconds > 0',
            ]),
            '1m',
            'critical',
            'Mail for connector {{ $labels.connector }} is bouncing',
            describe(
              connector + ' has not delivered for {{ $value | humanizeDuration }}, longer than its retry window'
              + '{{ with printf "mailflow_queue_expiry_seconds{connector=%q}" $labels.connector | query }}'
              + '{{ with . | first }} of {{ .Value | humanizeDuration }}{{ end }}{{ end }}'
              + '. Messages queued for it are expiring and going back to their senders as non-delivery reports, and more follow every hour the outage lasts.',
              "the failure reported by this connector's code alert was not fixed within the retry window.",
              "restore delivery at once (see the code alert's runbook) and tell the affected senders that their mail was returned and has to be sent again.",
            ),
          ),
        ],
      },

      comment(|||
        The real Postfix queue on the exporter's host (`postfix_queue` in the exporter's
        configuration), after Exchange Online's "Messages have been delayed" alert. /probe carries
        the queue series of its connector together with the connector's target labels (owner,
        team), so the alert reads them from the probe job; /metrics serves the same numbers again.
      |||) + {
        name: 'mailflow-postfix-queue',
        rules: [
          alert(
            'MailflowPostfixQueueDelayed',
            std.join('\n', [
              'sum without (code) (mailflow_postfix_queue_messages{%s}) >= %s' % [config.probeSelector, text.number(config.postfixQueueMessages)],
              '  and on (job, instance, connector)',
              'mailflow_postfix_queue_oldest_age_seconds{%s} >= %s' % [config.probeSelector, text.number(config.postfixQueueAgeSeconds)],
            ]),
            '5m',
            'warning',
            '{{ $value }} messages for connector {{ $labels.connector }} are delayed in the Postfix queue',
            describe(
              'The Postfix queue holds {{ $value }} deferred messages for connector {{ $labels.connector }}'
              + '{{ with printf "mailflow_postfix_queue_oldest_age_seconds{connector=%q}" $labels.connector | query }}'
              + '{{ with . | first }}, the oldest of them queued {{ .Value | humanizeDuration }} ago{{ end }}{{ end }}'
              + '. The exporter counts the messages whose last delivery attempt failed, whatever their age, and knows the age of the oldest one only, so this fires once at least '
              + text.number(config.postfixQueueMessages) + ' are waiting and the oldest has waited '
              + text.duration(config.postfixQueueAgeSeconds) + ' or more (Exchange Online counts the messages older than that).',
              "the destination behind the connector fails (see the connector's code alert and the codes of the queued messages), it accepts mail more slowly than it arrives (throttling, greylisting, 421 replies), or a flood of mail from one sender.",
              'follow the runbook of the code most of the queued messages carry; if the destination is healthy but slow, ask its owner about limits on your sending addresses; if one sender floods the queue, stop it before its mail crowds out the rest.',
            ),
          ),
        ],
      },

      comment(|||
        Certificate expiry is measured whenever a server presents a certificate, whether or not the
        connector validates it.
      |||) + {
        name: 'mailflow-certificates',
        rules: [
          leafCertificateAlert(
            'MailflowCertificateExpiringSoon',
            config.certificateWarningDays,
            'warning',
            'a renewal that has not happened yet, or automated renewal that is failing or renewed the certificate without installing it on this server.',
            'renew the certificate and install it on the server; if the server belongs to a partner, tell the partner. Once it expires, connectors that validate certificates stop with 4.7.320.',
          ),
          leafCertificateAlert(
            'MailflowCertificateExpiryCritical',
            config.certificateCriticalDays,
            'critical',
            'renewal was missed or failed, or the renewed certificate never reached this server.',
            'renew and install the certificate today; if the server belongs to a partner, contact the partner now. Connectors that validate certificates stop with 4.7.320 the moment it expires.',
          ),
          comment(|||
            The chain's earliest expiry includes the leaf; these fire only when another certificate
            of the chain (an intermediate) runs out before the leaf does, so as not to repeat the
            leaf alerts above.
          |||) + chainCertificateAlert(
            'MailflowCertificateChainExpiringSoon',
            config.certificateWarningDays,
            'warning',
            'the server still sends an old intermediate certificate although its issuer has published a newer one.',
            "install the current intermediate chain from the certificate's issuer on the server; if the server belongs to a partner, tell the partner.",
          ),
          chainCertificateAlert(
            'MailflowCertificateChainExpiryCritical',
            config.certificateCriticalDays,
            'critical',
            'an outdated intermediate certificate is still installed on the server.',
            'replace the intermediate chain on the server today; if the server belongs to a partner, contact the partner now. Connectors that validate certificates stop with 4.7.320 once the chain expires.',
          ),
          comment(|||
            An address that delivers although its certificate fails full validation: the connector's
            tls_settings do not enforce validation today, but the problem is real. Not where DANE
            authenticates the certificate (a DANE-EE record vouches for a self-signed one by design).
          |||) + alert(
            'MailflowCertificateInvalidNotEnforced',
            std.join('\n', [
              'mailflow_certificate_valid == 0',
              '  and on (job, instance, connector, address)',
              'mailflow_target_success == 1',
              '  unless on (job, instance, connector, address)',
              'mailflow_dane_match == 1',
            ]),
            '15m',
            'warning',
            connector + ' delivers to {{ $labels.address }} despite an invalid certificate',
            describe(
              'Address {{ $labels.address }} of connector {{ $labels.connector }} accepts mail, but its certificate'
              + '{{ with printf "mailflow_certificate_not_after_timestamp_seconds{connector=%q,address=%q}" $labels.connector $labels.address | query }}'
              + '{{ with . | first }} (subject {{ .Labels.subject }}, issuer {{ .Labels.issuer }}){{ end }}{{ end }}'
              + " would fail full validation of chain, dates and name. The connector's TLS setting does not enforce validation, so mail flows for now; once validation is required, delivery stops with 4.7.320.",
              "an expired or self-signed certificate, one from a private or unknown issuer, or one that does not carry the server's name.",
              "probe the connector by hand to see which check fails and replace the certificate before anyone tightens the connector's TLS settings; if the server belongs to a partner, tell the partner.",
            ),
          ),
          comment(|||
            An address that delivers only in plain text: its TLS handshake fails and the connector,
            being opportunistic, falls back as a sending server does.
          |||) + alert(
            'MailflowTlsFallback',
            'mailflow_tls_fallback == 1',
            '15m',
            'warning',
            connector + ' delivers to {{ $labels.address }} without encryption',
            describe(
              'Address {{ $labels.address }} of connector {{ $labels.connector }} offers STARTTLS but its TLS handshake fails, so mail is delivered in plain text over a second connection, as a sending server does under opportunistic TLS. Mail to it crosses the network unencrypted today, and the day the connector requires TLS delivery stops with 4.4.317 (with 4.7.321 the day the destination publishes an MTA-STS enforce policy or DANE).',
              'a server that speaks only TLS 1.0 or 1.1, which Exchange Online never sends with, or a broken TLS setup on the server (no usable certificate or cipher, a middlebox that breaks the handshake).',
              'run mailflow_exporter probe on the connector: it says why the handshake failed (tls_version, with the version the server offered when it said, or tls_handshake); then enable TLS 1.2 or later on the server or repair its TLS setup; if the server belongs to a partner, tell the partner.',
            ),
          ),
        ],
      },

      comment(|||
        MTA-STS (RFC 8461): the policy of each connector's policy domain (its first recipient
        domain, or its first smart host). A host that an enforce policy does not list (code 4.4.8)
        and a certificate such a policy refuses (4.7.5) are critical per host and address, whether
        or not other hosts still deliver: Exchange Online holds the mail for that host. The other
        rules warn about the policy itself, while mail still flows.
      |||) + {
        name: 'mailflow-mta-sts',
        rules: [
          alert(
            'MailflowMtaStsHostNotInPolicy',
            // The outcome, not mailflow_mta_sts_mx_match: where DANE applies to the host, the
            // policy is not applied to it (RFC 8461) and an unlisted host still delivers.
            'max without (code, address) (mailflow_target_status{code="4.4.8"}) == 1',
            '5m',
            'critical',
            'Host {{ $labels.host }} of connector {{ $labels.connector }} is not in its MTA-STS policy (4.4.8)',
            describe(
              "The destination's MTA-STS policy is in enforce mode and none of its mx patterns matches {{ $labels.host }}, a host connector {{ $labels.connector }} delivers to. Sending servers that honour the policy (Exchange Online among them) refuse to deliver to this host, without even connecting (4.4.8); if it is the only host, mail for the connector is being held in the queue."
              + '{{ with printf "mailflow_probe_success{connector=%q}" $labels.connector | query }}'
              + '{{ with . | first }}{{ if eq .Value 1.0 }} Another host still accepts the mail for now.{{ end }}{{ end }}{{ end }}',
              'the MX records were changed (a new mail provider, a new server) and the policy file was not; a typo in an mx line; or a wildcard that is one label too short (*.example.com matches mx.example.com, not mx.eu.example.com).',
              'add the host to the policy file at https://mta-sts.DOMAIN/.well-known/mta-sts.txt and change the id of the _mta-sts TXT record so that senders fetch it again, or point the MX back at a listed host; if the destination belongs to a partner, contact the partner.',
            ),
          ),
          alert(
            'MailflowMtaStsCertificateInvalid',
            // Without its code label: the Alertmanager configuration treats an alert with a
            // `code` as a per-code connector alert.
            'max without (code) (mailflow_target_status{code="4.7.5"}) == 1',
            '5m',
            'critical',
            "{{ $labels.address }} of connector {{ $labels.connector }} fails its destination's MTA-STS policy (4.7.5)",
            describe(
              "The destination's MTA-STS policy is in enforce mode and the certificate that {{ $labels.address }} ({{ $labels.host }}) presents is not valid for the host"
              + '{{ with printf "mailflow_probe_failure_info{connector=%q,code=%q}" $labels.connector "4.7.5" | query }}'
              + '{{ with . | first }} (reason {{ .Labels.reason }}){{ end }}{{ end }}'
              + '. Sending servers that honour the policy refuse to deliver to it (4.7.5), whatever the connector itself checks.',
              'an expired certificate, a certificate that does not name the MX host (a renewal for another name, a default certificate), or one from an issuer that public senders do not trust (a private CA, a missing intermediate certificate).',
              "renew or replace the certificate so that a public CA vouches for the host's own name, and install the full chain; if the destination belongs to a partner, contact the partner.",
            ),
          ),
          alert(
            'MailflowMtaStsPolicyUnfetchable',
            std.join('\n', [
              'mailflow_mta_sts_policy_fetch_success == 0',
              '  and on (job, instance, connector)',
              'mailflow_mta_sts_policy_mode{mode="enforce"} == 1',
            ]),
            '30m',
            'warning',
            "MTA-STS policy of connector {{ $labels.connector }}'s destination cannot be fetched",
            describe(
              "The destination publishes an MTA-STS record, but its policy could not be fetched for at least 30 minutes; the enforce policy fetched earlier is still cached and in force"
              + '{{ with printf "mailflow_mta_sts_policy_expiry_timestamp_seconds{connector=%q} - time()" $labels.connector | query }}'
              + '{{ with . | first }} for {{ .Value | humanizeDuration }}{{ end }}{{ end }}'
              + '. Senders that have no copy yet deliver as if there were no policy, and once the cached copies expire nobody enforces it.',
              'the policy host mta-sts.DOMAIN is down or its name does not resolve, its certificate expired or names another host, it redirects or answers 404 (redirects are not followed), the file is served with another media type than text/plain, is over 64 KiB, or no longer parses.',
              'run mailflow_exporter probe CONNECTOR to see why the fetch fails, and fix the policy host; if the destination belongs to a partner, tell the partner.',
            ),
          ),
          alert(
            'MailflowMtaStsPolicyExpiring',
            std.join('\n', [
              '(mailflow_mta_sts_policy_expiry_timestamp_seconds - time())',
              '  < %s * mailflow_mta_sts_policy_max_age_seconds' % text.number(config.mtaStsPolicyExpiryFraction),
              '  and on (job, instance, connector)',
              'mailflow_mta_sts_policy_mode{mode=~"enforce|testing"} == 1',
            ]),
            '15m',
            'warning',
            "Cached MTA-STS policy of connector {{ $labels.connector }}'s destination expires in {{ $value | humanizeDuration }}",
            describe(
              "The cached copy of the destination's MTA-STS policy expires in {{ $value | humanizeDuration }}, and it has not been renewed although the exporter refetches it from half its max_age on. Once it expires, senders that cannot fetch the policy again stop enforcing it: mail still flows, but without the protection the domain asked for.",
              'the policy host has failed to serve the policy for a long time (see MailflowMtaStsPolicyUnfetchable), or a very short max_age.',
              'fix the policy host so that the policy can be fetched again; if the destination belongs to a partner, tell the partner.',
            ),
          ),
          alert(
            'MailflowMtaStsPolicyIdChangedPolicyUnchanged',
            'mailflow_mta_sts_policy_same_as_previous_id == 1',
            '1h',
            'warning',
            "MTA-STS record of connector {{ $labels.connector }}'s destination announces a new id, but the policy is the same",
            describe(
              'The _mta-sts TXT record announces a new policy id, but the policy host still serves exactly the policy it served under the previous id. A new id tells senders to fetch a changed policy: most likely the record was updated and the policy file was not.',
              'the policy file was not deployed (or a cache or CDN in front of the policy host still serves the old one), or the id was changed on purpose without a change to the policy.',
              'compare the served file with the intended one and deploy it; if the id was changed on purpose, the alert clears once the policy itself changes, so silence it meanwhile.',
            ),
          ),
        ],
      },

      comment(|||
        DANE (RFC 7672), as Exchange Online checks it on every outbound delivery. A broken DANE
        promise holds the mail now (critical); a rollover that is not ready breaks it at the next
        certificate renewal (warning). The reason and reply labels are aggregated away, so that a
        change of reason during an outage neither resets `for:` nor opens a second alert.
      |||) + {
        name: 'mailflow-dane',
        rules: [
          alert(
            'MailflowDaneTlsaMismatch',
            'max without (reason, reply) (mailflow_probe_failure_info{code=~"4.7.322|4.7.323|4.7.325",phase="tls"}) == 1',
            '5m',
            'critical',
            connector + "'s destination fails its own DANE records ({{ $labels.code }})",
            describe(
              connector + ' has not delivered for at least 5 minutes: the destination publishes DNSSEC-signed TLSA records and the certificate its server presents does not satisfy them (' + '{{ $labels.code }}). Senders that check DANE, Exchange Online among them, hold the mail and bounce it after the retry window.',
              'a certificate renewed (new key) without updating the TLSA record, a DANE-TA certificate that expired or names another host.',
              'run `mailflow_exporter probe {{ $labels.connector }}`: it prints the TLSA record the served certificate needs. Publish it (or put the previous certificate back); if the destination belongs to a partner, contact the partner.',
            ),
          ),
          alert(
            'MailflowDnssecBogus',
            'max without (reason, reply, phase) (mailflow_probe_failure_info{code="4.7.324"}) == 1',
            '5m',
            'critical',
            connector + "'s destination has invalid DNSSEC (4.7.324)",
            describe(
              connector + " has not delivered for at least 5 minutes: the destination's MX, address or TLSA answers fail DNSSEC validation, or the TLSA lookup of a signed host fails. Senders that check DANE hold the mail.",
              'expired signatures (a signer that stopped), a DS record at the parent that no longer matches the zone keys after a key rollover, or a broken delegation of the _tcp names.',
              'run `mailflow_exporter probe {{ $labels.connector }}` to see which RRset fails, then re-sign the zone or fix the DS record at the parent; if the destination belongs to a partner, contact the partner.',
            ),
          ),
          alert(
            'MailflowDaneRolloverNotReady',
            'mailflow_dane_rollover_ready == 0',
            '1h',
            'warning',
            'DANE of {{ $labels.host }} (connector {{ $labels.connector }}) breaks at the next certificate renewal',
            describe(
              'The TLSA records of {{ $labels.host }} match only the key of the certificate served today, and no DANE-TA record covers its issuer. The next certificate renewal with a new key will make connector {{ $labels.connector }} fail with 4.7.323 and senders that check DANE hold the mail.',
              'a single 3 1 1 record and automated renewal that generates a new key each time.',
              "before the next renewal, publish the 3 1 1 record of the next key beside the current one (or a 2 1 1 record of the issuing CA's key); `mailflow_exporter probe {{ $labels.connector }}` prints the records in place.",
            ),
          ),
          alert(
            'MailflowDaneMandatoryWithoutDane',
            'max without (reply) (mailflow_probe_failure_info{reason="dane_required"}) == 1',
            '5m',
            'critical',
            connector + ' requires DANE, and its destination has none (4.7.323)',
            describe(
              connector + ' has smtp_dane_mode mandatory and has not delivered for at least 5 minutes: its destination has no DNSSEC-secure TLSA record that SMTP can use, so mail is held.',
              'the destination zone is not signed (or lost its DS record), its TLSA records were removed, or only usage 0/1 records are published.',
              "have the destination publish signed TLSA records, or set the connector's smtp_dane_mode back to opportunistic if DANE is not really required.",
            ),
          ),
        ],
      },

      comment('The exporter itself: without it, none of the alerts above can fire.') + {
        name: 'mailflow-exporter',
        rules: [
          alert(
            'MailflowExporterDown',
            'up{%s} == 0' % config.exporterSelector,
            '5m',
            'critical',
            'mailflow_exporter at {{ $labels.instance }} cannot be scraped',
            describe(
              'Prometheus has failed to scrape /metrics on {{ $labels.instance }} for at least 5 minutes. While the exporter is unreachable no connector is watched and none of the mail flow alerts can fire.',
              'the process stopped or crashes on start, it listens on another address or port, or a firewall or TLS and authentication settings block the scrape.',
              "check the service and its log, then the target's error on Prometheus' Targets page.",
            ),
          ),
          comment(|||
            A failing connector is not a failed scrape: /probe answers with metrics either way.
            Silenced while the whole exporter is down, which MailflowExporterDown reports.
          |||) + alert(
            'MailflowProbeScrapeFailed',
            std.join('\n', [
              'up{%s} == 0' % config.probeSelector,
              '  unless on (instance)',
              'up{%s} == 0' % config.exporterSelector,
            ]),
            '5m',
            'warning',
            'Probes of connector {{ $labels.connector }} are not running',
            describe(
              'Prometheus has failed to scrape /probe for connector {{ $labels.connector }} on {{ $labels.instance }} for at least 5 minutes, so nothing is known about the connector right now and its code alerts cannot fire. This is not a delivery failure: a failing connector still answers the scrape with metrics.',
              "the probe outlives the scrape timeout, the connector was renamed or removed from the exporter's configuration while service discovery still lists it, or the exporter is overloaded (a probe that got no connection slot answers 503; see MailflowProbesThrottled).",
              "read the scrape error on Prometheus' Targets page, fetch the probe URL by hand, and compare the connector names in service discovery with the exporter's configuration.",
            ),
          ),
          comment(|||
            A probe that the exporter's own connection caps (--probe.max-connections*) kept from
            running is no connector failure: it fails its scrape and is counted here.
          |||) + alert(
            'MailflowProbesThrottled',
            'increase(mailflow_exporter_probe_slot_timeouts_total{%s}[15m]) > 0' % config.exporterSelector,
            '5m',
            'warning',
            'mailflow_exporter at {{ $labels.instance }} cannot run the probes of connector {{ $labels.connector }}',
            describe(
              'Probes of connector {{ $labels.connector }} on the exporter at {{ $labels.instance }} found no free connection before their deadline ({{ $value | printf "%.0f" }} in the last 15 minutes), so they did not run. This says nothing about the connector: its code and counters stay as they were, and its scrapes fail instead.',
              'more probes of one mail server at once than --probe.max-connections-per-address allows (several connectors on one smart host, several Prometheus servers scraping the same connectors, or short scrape intervals), or more probes in all than --probe.max-connections allows.',
              'raise the cap the exporter log names, spread the scrapes of connectors that share a server (longer intervals, fewer Prometheus servers probing the same connector), or shard the connectors over more exporters.',
            ),
          ),
          alert(
            'MailflowConfigReloadFailed',
            'mailflow_config_last_reload_successful == 0',
            '5m',
            'warning',
            'mailflow_exporter at {{ $labels.instance }} rejected its new configuration',
            describe(
              'The last configuration reload of the exporter at {{ $labels.instance }} failed. It keeps running with the previous configuration, so recent changes to connectors are not in effect, and the next restart will fail on the same file.',
              'a YAML syntax error, an unknown or misspelt key, or an invalid value in the edited file.',
              'run mailflow_exporter check-config on the file, fix every error it reports, and reload again.',
            ),
          ),
        ],
      },
    ],
  },
}
