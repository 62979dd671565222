// Where the proxy (or any OpenAI-compatible server) is, and how patient to be with it.
namespace OpenAI.LocalAdapter
{
    public class LocalAdapterConfig
    {
        /// <summary>The server, with or without /v1: "http://localhost:9000".</summary>
        public string BaseUrl { get; set; } = "http://localhost:9000";
        /// <summary>The model a request without one uses.</summary>
        public string DefaultModel { get; set; }
        /// <summary>Until the reply's head (and for a whole reply, its body).</summary>
        public int TimeoutSeconds { get; set; } = 300;
        /// <summary>Retries on 429, 502, 503, 504 and connection failures (never once a stream started).</summary>
        public int MaxRetries { get; set; } = 3;
        /// <summary>Sent as "Authorization: Bearer ..." (the proxy's API key).</summary>
        public string ApiKey { get; set; }
        /// <summary>The first retry's wait when the server names none (doubles each retry).</summary>
        public double RetryBaseSeconds { get; set; } = 0.5;
    }
}
