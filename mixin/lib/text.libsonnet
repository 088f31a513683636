// Numbers and durations in the words the alerts use.
{
  // A threshold as PromQL and people read it: 3600, 0.75 (never 0.75000000000000001).
  number(value)::
    if std.floor(value) == value then std.toString(value) else std.format('%g', value),

  // A share as a percentage: 0.75 -> "75 %".
  percent(fraction):: self.number(fraction * 100) + ' %',

  // Seconds in the largest whole unit: 3600 -> "an hour", 5400 -> "90 minutes".
  duration(seconds)::
    assert seconds > 0 && std.floor(seconds) == seconds : 'a duration is a positive whole number of seconds, not %s' % seconds;
    local units = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
    local unit = [u for u in units if seconds % u[0] == 0][0];
    local count = seconds / unit[0];
    if count == 1 then (if unit[1] == 'hour' then 'an hour' else 'a ' + unit[1])
    else std.toString(count) + ' ' + unit[1] + 's',

  // The anchor GitHub and most Markdown renderers give a heading that is one word.
  anchor(heading):: std.asciiLower(heading),
}
