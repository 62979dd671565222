// A result with the reply it came in (as openai-dotnet's ClientResult<T>): the value, the HTTP
// status and the headers the proxy adds (x-request-id, x-ratelimit-*, x-cache, x-devstral-variant).
using System;
using System.Collections.Generic;
using System.Linq;
using System.Net.Http;

namespace OpenAI.LocalAdapter
{
    public sealed class ClientResult<T>
    {
        internal ClientResult(T value, int status, IReadOnlyDictionary<string, string> headers)
        {
            Value = value;
            Status = status;
            Headers = headers;
        }

        public T Value { get; }
        public int Status { get; }

        /// <summary>Every header of the reply, names lower-cased (several values joined by ", ").</summary>
        public IReadOnlyDictionary<string, string> Headers { get; }

        public string RequestId { get { string id; return Headers.TryGetValue("x-request-id", out id) ? id : null; } }

        internal static IReadOnlyDictionary<string, string> HeadersOf(HttpResponseMessage response)
        {
            var all = response.Headers.Concat(response.Content != null ? response.Content.Headers : Enumerable.Empty<KeyValuePair<string, IEnumerable<string>>>());
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var pair in all) headers[pair.Key.ToLowerInvariant()] = string.Join(", ", pair.Value);
            return headers;
        }
    }
}
