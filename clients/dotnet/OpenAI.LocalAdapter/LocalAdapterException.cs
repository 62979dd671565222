// An OpenAI error body (`{"error": {"message", "type", "param", "code"}}`) as an exception.
using System;
using System.Collections.Generic;

namespace OpenAI.LocalAdapter
{
    public class LocalAdapterException : Exception
    {
        public LocalAdapterException(int status, string type, string code, string param, string message, Exception inner = null)
            : base(message, inner)
        {
            Status = status;
            Type = type;
            Code = code;
            Param = param;
        }

        /// <summary>The HTTP status (0: no reply, a connection failure or a timeout).</summary>
        public int Status { get; }
        public string Type { get; }
        public string Code { get; }
        public string Param { get; }

        /// <summary>The reply's headers (x-request-id, x-ratelimit-*, retry-after), when there was a reply.</summary>
        public IReadOnlyDictionary<string, string> Headers { get; internal set; } = new Dictionary<string, string>();

        /// <summary>The request id the proxy gave the request (quote it when reporting a problem).</summary>
        public string RequestId { get { string id; return Headers.TryGetValue("x-request-id", out id) ? id : null; } }

        public static LocalAdapterException FromBody(int status, string body)
        {
            try
            {
                var error = Json.Obj(Json.Parse(body) as IDictionary<string, object>, "error");
                if (error != null)
                {
                    object code;
                    error.TryGetValue("code", out code);
                    return For(status, Json.Str(error, "type"), code?.ToString(), Json.Str(error, "param"), Json.Str(error, "message") ?? "(no message)");
                }
            }
            catch (FormatException)
            {
            }
            string text = body == null ? "" : (body.Length > 500 ? body.Substring(0, 500) : body);
            return For(status, null, null, null, "The server answered " + status + ": " + text);
        }

        private static LocalAdapterException For(int status, string type, string code, string param, string message)
        {
            if (status == 401) return new InvalidApiKeyException(status, type, code, param, message);
            if (status == 404) return new NotFoundException(status, type, code, param, message);
            if (status == 429) return new RateLimitException(status, type, code, param, message);
            return new LocalAdapterException(status, type, code, param, message);
        }

        public override string ToString()
        {
            return GetType().Name + " " + Status + " " + Code + ": " + Message;
        }
    }

    /// <summary>401: the key (or token) was refused. (Not AuthenticationException: System.Security.Authentication has one.)</summary>
    public class InvalidApiKeyException : LocalAdapterException
    {
        public InvalidApiKeyException(int status, string type, string code, string param, string message) : base(status, type, code, param, message) { }
    }

    public class NotFoundException : LocalAdapterException
    {
        public NotFoundException(int status, string type, string code, string param, string message) : base(status, type, code, param, message) { }
    }

    public class RateLimitException : LocalAdapterException
    {
        public RateLimitException(int status, string type, string code, string param, string message) : base(status, type, code, param, message) { }
    }
}
