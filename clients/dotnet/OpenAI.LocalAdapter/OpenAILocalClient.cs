// The client of the design: owns one HttpClient, gives the chat service and conversations.
using System;
using System.Net.Http;

namespace OpenAI.LocalAdapter
{
    public class OpenAILocalClient : IDisposable
    {
        private readonly HttpClient http;
        private readonly LocalAdapterConfig config;

        public OpenAILocalClient(LocalAdapterConfig config) : this(config, null) { }

        /// <summary>`handler`: a custom HttpMessageHandler (a proxy, a test double); owned by the client.</summary>
        public OpenAILocalClient(LocalAdapterConfig config, HttpMessageHandler handler)
        {
            this.config = config ?? throw new ArgumentNullException(nameof(config));
            if (handler == null && AbortingHandler.Needed) handler = new AbortingHandler(); // see AbortingHandler.cs
            http = handler == null ? new HttpClient() : new HttpClient(handler, true);
            http.Timeout = config.Timeout > TimeSpan.Zero ? config.Timeout : System.Threading.Timeout.InfiniteTimeSpan;
            Chat = new ChatService(http, config);
        }

        public IChatService Chat { get; }

        public LocalAdapterConfig Config { get { return config; } }

        public IConversationManager CreateConversation()
        {
            return new ConversationContext(Chat, config.DefaultModel);
        }

        public void Dispose()
        {
            http.Dispose();
        }
    }
}
