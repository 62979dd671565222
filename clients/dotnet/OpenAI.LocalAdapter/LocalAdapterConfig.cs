// Where the proxy (or any OpenAI-compatible server) is, and how patient to be with it.
using System;

namespace OpenAI.LocalAdapter
{
    public class LocalAdapterConfig
    {
        /// <summary>The server, with or without /v1: "http://localhost:9000".</summary>
        public string BaseUrl { get; set; } = "http://localhost:9000";
        /// <summary>The model a request without one uses.</summary>
        public string DefaultModel { get; set; }
        /// <summary>Until the reply's head (and for a whole reply, its body); Timeout.InfiniteTimeSpan: none.</summary>
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(300);
        /// <summary>The design's name for Timeout, in whole seconds (0: none).</summary>
        public int TimeoutSeconds
        {
            get { return Timeout == System.Threading.Timeout.InfiniteTimeSpan ? 0 : (int)Timeout.TotalSeconds; }
            set { Timeout = value > 0 ? TimeSpan.FromSeconds(value) : System.Threading.Timeout.InfiniteTimeSpan; }
        }
        /// <summary>Retries on 429, 502, 503, 504 and connection failures (never once a stream started).</summary>
        public int MaxRetries { get; set; } = 3;
        /// <summary>Sent as "Authorization: Bearer ..." (the proxy's API key).</summary>
        public string ApiKey { get; set; }
        /// <summary>The first retry's wait when the server names none (doubles each retry).</summary>
        public TimeSpan RetryBase { get; set; } = TimeSpan.FromSeconds(0.5);
        /// <summary>RetryBase in seconds.</summary>
        public double RetryBaseSeconds
        {
            get { return RetryBase.TotalSeconds; }
            set { RetryBase = TimeSpan.FromSeconds(value); }
        }
    }
}
