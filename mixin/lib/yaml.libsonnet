// Prometheus rule files as people write them by hand: keys in reading order (alert, expr, for,
// labels, annotations), multi-line strings as block scalars, plain scalars where YAML allows
// them, and a hidden `comment::` field of any object rendered as `#` lines above it.
//
// std.manifestYamlDoc is correct but sorts keys alphabetically and quotes every string, which
// makes a rules file hard to review; promtool and Prometheus read both the same way.

// Keys that come first, in this order; all others follow alphabetically.
local keyOrder = [
  'groups', 'name', 'interval', 'limit', 'rules',
  'alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations',
  'severity', 'summary', 'description', 'runbook_url',
];

// A letter per listed key (A, B, ...), to sort by; the others sort after them, by name.
local rankOf = { [keyOrder[index]]: std.char(65 + index) for index in std.range(0, std.length(keyOrder) - 1) };
local sortKey(key) = (if std.objectHas(rankOf, key) then rankOf[key] else 'z') + key;

local pad(width) = std.repeat(' ', width);

// The arrays of `arrays` one after the other (std.flattenArrays, but without its quadratic
// copying in jsonnet 0.18).
local concat(arrays) = std.join([], arrays);

// (std.findSubstr would do, but it takes a fifth of a second per description in jsonnet 0.18.)
local contains(text, part) = std.strReplace(text, part, '') != text;

// Sets of characters, as objects: std.member is slow in jsonnet 0.18.
local charSet(chars) = { [c]: true for c in std.stringChars(chars) };
local letters = charSet('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
local digits = charSet('0123456789');
local durationChars = charSet('0123456789smhdwy');
local units = charSet('smhdwy');

// A Prometheus duration such as 5m or 1h: digits followed by unit letters.
local isDuration(text) =
  local chars = std.stringChars(text);
  std.length(chars) >= 2
  && std.objectHas(digits, chars[0])
  && std.objectHas(units, chars[std.length(chars) - 1])
  && std.filter(function(c) !std.objectHas(durationChars, c), chars) == [];

// Words a YAML 1.1 reader would take for a boolean or null.
local specialWords = { [word]: true for word in ['y', 'n', 'yes', 'no', 'true', 'false', 'on', 'off', 'null'] };

// Whether a one-line string can stand unquoted and still read back as that string. Templates
// (`{{ ... }}`) are quoted anyway, so that annotations stand out from the YAML around them.
local isPlain(text) =
  text != ''
  && (std.objectHas(letters, text[0]) || text[0] == '(' || isDuration(text))
  && !std.objectHas(specialWords, std.asciiLower(text))
  && !contains(text, ': ')
  && !contains(text, ' #')
  && !contains(text, '{{')
  && !contains(text, '\t')
  && text[std.length(text) - 1] != ':'
  && text[std.length(text) - 1] != ' ';

// A one-line string in double quotes. (std.escapeStringJson does the same, but takes a tenth of
// a second per description in jsonnet 0.18.)
local quoted(text) =
  assert std.filter(function(c) std.codepoint(c) < 32, std.stringChars(text)) == [] : 'a control character in ' + text;
  '"' + std.strReplace(std.strReplace(text, '\\', '\\\\'), '"', '\\"') + '"';

local scalar(value) =
  if std.isString(value) then
    (if isPlain(value) then value else quoted(value))
  else if std.isObject(value) then '{}'
  else if std.isArray(value) then '[]'
  else std.manifestJson(value);

local isMultiLine(value) = std.isString(value) && contains(value, '\n');

local isNested(value) =
  (std.isObject(value) && std.length(std.objectFields(value)) > 0)
  || (std.isArray(value) && std.length(value) > 0);

local commentLine(line) = if line == '' then '#' else '# ' + line;

// The `#` lines of an object's hidden `comment` field.
local commentLines(value, indent) =
  if std.isObject(value) && std.objectHasAll(value, 'comment') && !std.objectHas(value, 'comment') then
    [pad(indent) + commentLine(line) for line in std.split(value.comment, '\n')]
  else [];

local blockScalar(text, indent) =
  local body = std.rstripChars(text, '\n');
  local lines = std.split(body, '\n');
  assert !std.startsWith(lines[0], ' ') : 'a block scalar may not start with a space: ' + text;
  [if line == '' then '' else pad(indent) + line for line in lines];

local entry(key, value, indent, lines) =
  if isNested(value) then
    [pad(indent) + key + ':'] + lines(value, indent + 2)
  else if isMultiLine(value) then
    [pad(indent) + key + ': ' + (if std.endsWith(value, '\n') then '|' else '|-')]
    + blockScalar(value, indent + 2)
  else
    [pad(indent) + key + ': ' + scalar(value)];

// The lines of a nested value (a non-empty object or array) at `indent`.
local lines(value, indent) =
  if std.isObject(value) then
    concat([
      entry(key, value[key], indent, lines)
      for key in std.sort(std.objectFields(value), sortKey)
    ])
  else
    concat([
      local item = value[index];
      // A blank line between the objects of a list (groups, rules).
      (if index > 0 && std.isObject(item) then [''] else [])
      + commentLines(item, indent)
      + (
        if isNested(item) && std.isObject(item) then
          local inner = lines(item, indent + 2);
          [pad(indent) + '- ' + std.substr(inner[0], indent + 2, std.length(inner[0]))]
          + inner[1:]
        else if isNested(item) || isMultiLine(item) then
          error 'lists of lists and multi-line list items are not supported'
        else
          [pad(indent) + '- ' + scalar(item)]
      )
      for index in std.range(0, std.length(value) - 1)
    ]);

{
  // A YAML document for `value` (an object), preceded by the lines of `header` as comments;
  // without the final newline, which `jsonnet -S` adds.
  document(value, header='')::
    local head = if header == '' then [] else [commentLine(line) for line in std.split(std.rstripChars(header, '\n'), '\n')] + [''];
    std.join('\n', head + commentLines(value, 0) + lines(value, 0)),
}
