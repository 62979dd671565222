// A small JSON reader and writer: objects as Dictionary<string, object>, arrays as
// List<object>, numbers as long or double. No dependency beyond the base library, so the
// same source builds on Mono and on modern .NET.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace OpenAI.LocalAdapter
{
    /// <summary>Raw JSON text written as it is (a tool's parameter schema).</summary>
    public sealed class RawJson
    {
        public RawJson(string text) { Text = text; }
        public string Text { get; }
    }

    public static class Json
    {
        public const int MaxDepth = 128;

        public static object Parse(string text)
        {
            var reader = new Reader(text);
            reader.SkipSpace();
            object value = reader.Value(0);
            reader.SkipSpace();
            if (reader.Position != text.Length) throw new FormatException("Trailing characters after the JSON value.");
            return value;
        }

        public static string Write(object value)
        {
            var sb = new StringBuilder();
            WriteValue(sb, value);
            return sb.ToString();
        }

        public static void WriteValue(StringBuilder sb, object value)
        {
            if (value == null) { sb.Append("null"); return; }
            if (value is RawJson raw) { sb.Append(raw.Text); return; }
            if (value is string s) { WriteString(sb, s); return; }
            if (value is bool b) { sb.Append(b ? "true" : "false"); return; }
            if (value is int || value is long) { sb.Append(Convert.ToInt64(value).ToString(CultureInfo.InvariantCulture)); return; }
            if (value is double || value is float || value is decimal)
            {
                sb.Append(Convert.ToDouble(value).ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is IDictionary<string, object> obj)
            {
                sb.Append('{');
                bool first = true;
                foreach (var pair in obj)
                {
                    if (pair.Value == null) continue; // absent, not null: what OpenAI servers expect
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, pair.Key);
                    sb.Append(':');
                    WriteValue(sb, pair.Value);
                }
                sb.Append('}');
                return;
            }
            if (value is System.Collections.IEnumerable list)
            {
                sb.Append('[');
                bool first = true;
                foreach (var item in list)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteValue(sb, item);
                }
                sb.Append(']');
                return;
            }
            throw new ArgumentException("Cannot write a " + value.GetType().Name + " as JSON.");
        }

        public static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        // ---- typed reads of a parsed object
        public static string Str(IDictionary<string, object> o, string key)
        {
            object v;
            return o != null && o.TryGetValue(key, out v) ? v as string : null;
        }

        public static long? Long(IDictionary<string, object> o, string key)
        {
            object v;
            if (o == null || !o.TryGetValue(key, out v) || v == null) return null;
            if (v is long l) return l;
            if (v is double d) return (long)d;
            return null;
        }

        public static IDictionary<string, object> Obj(IDictionary<string, object> o, string key)
        {
            object v;
            return o != null && o.TryGetValue(key, out v) ? v as IDictionary<string, object> : null;
        }

        public static List<object> Arr(IDictionary<string, object> o, string key)
        {
            object v;
            return o != null && o.TryGetValue(key, out v) ? v as List<object> : null;
        }

        private sealed class Reader
        {
            private readonly string text;
            public int Position;

            public Reader(string text) { this.text = text; }

            public void SkipSpace()
            {
                while (Position < text.Length && (text[Position] == ' ' || text[Position] == '\t' || text[Position] == '\n' || text[Position] == '\r')) Position++;
            }

            private char Peek()
            {
                if (Position >= text.Length) throw new FormatException("Unexpected end of JSON.");
                return text[Position];
            }

            public object Value(int depth)
            {
                if (depth > MaxDepth) throw new FormatException("JSON nested too deeply.");
                char c = Peek();
                if (c == '{') return Object(depth);
                if (c == '[') return Array(depth);
                if (c == '"') return String();
                if (c == 't') { Expect("true"); return true; }
                if (c == 'f') { Expect("false"); return false; }
                if (c == 'n') { Expect("null"); return null; }
                return Number();
            }

            private void Expect(string word)
            {
                if (string.CompareOrdinal(text, Position, word, 0, word.Length) != 0) throw new FormatException("Invalid JSON literal at " + Position + ".");
                Position += word.Length;
            }

            private Dictionary<string, object> Object(int depth)
            {
                var obj = new Dictionary<string, object>();
                Position++;
                SkipSpace();
                if (Peek() == '}') { Position++; return obj; }
                while (true)
                {
                    SkipSpace();
                    if (Peek() != '"') throw new FormatException("Expected a key at " + Position + ".");
                    string key = String();
                    SkipSpace();
                    if (Peek() != ':') throw new FormatException("Expected ':' at " + Position + ".");
                    Position++;
                    SkipSpace();
                    obj[key] = Value(depth + 1);
                    SkipSpace();
                    char c = Peek();
                    Position++;
                    if (c == '}') return obj;
                    if (c != ',') throw new FormatException("Expected ',' or '}' at " + (Position - 1) + ".");
                }
            }

            private List<object> Array(int depth)
            {
                var list = new List<object>();
                Position++;
                SkipSpace();
                if (Peek() == ']') { Position++; return list; }
                while (true)
                {
                    SkipSpace();
                    list.Add(Value(depth + 1));
                    SkipSpace();
                    char c = Peek();
                    Position++;
                    if (c == ']') return list;
                    if (c != ',') throw new FormatException("Expected ',' or ']' at " + (Position - 1) + ".");
                }
            }

            private string String()
            {
                Position++;
                var sb = new StringBuilder();
                while (true)
                {
                    char c = Peek();
                    Position++;
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    char e = Peek();
                    Position++;
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Position + 4 > text.Length) throw new FormatException("Truncated \\u escape.");
                            sb.Append((char)int.Parse(text.Substring(Position, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            Position += 4;
                            break;
                        default: throw new FormatException("Invalid escape at " + Position + ".");
                    }
                }
            }

            private object Number()
            {
                int start = Position;
                while (Position < text.Length && "+-0123456789.eE".IndexOf(text[Position]) >= 0) Position++;
                string s = text.Substring(start, Position - start);
                if (s.Length == 0) throw new FormatException("Unexpected character at " + start + ".");
                long l;
                if (s.IndexOfAny(new[] { '.', 'e', 'E' }) < 0 && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out l)) return l;
                return double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }
    }
}
