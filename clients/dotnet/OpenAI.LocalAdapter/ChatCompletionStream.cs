// A streamed completion as IAsyncEnumerable<ChatCompletionResponse>, written by hand (C# 7.2
// has no async iterators): each MoveNextAsync reads SSE lines until the next `data:` frame.
// Cancelled by the token given when it was made or the one given to GetAsyncEnumerator, either.
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public sealed class ChatCompletionStream : IAsyncEnumerable<ChatCompletionResponse>, IAsyncEnumerator<ChatCompletionResponse>
    {
        private readonly ChatService service;
        private readonly string body;
        private readonly CancellationToken created; // the token given when the stream was made
        private CancellationTokenSource linked; // ... and the enumerator's, either cancels
        private CancellationToken cancellationToken;
        private HttpResponseMessage response;
        private StreamReader reader;
        private CancellationTokenRegistration registration;
        private bool started;
        private bool finished;

        internal ChatCompletionStream(ChatService service, string body, CancellationToken cancellationToken)
        {
            this.service = service;
            this.body = body;
            created = cancellationToken;
            this.cancellationToken = cancellationToken;
        }

        /// <summary>The reply's headers (x-request-id, x-ratelimit-*), once the first chunk was asked for.</summary>
        public IReadOnlyDictionary<string, string> Headers { get; private set; } = new Dictionary<string, string>();

        public ChatCompletionResponse Current { get; private set; }

        /// <summary>What the chunks so far add up to (text, tool calls, finish reason, usage).</summary>
        public StreamAccumulator Accumulated { get; } = new StreamAccumulator();

        public IAsyncEnumerator<ChatCompletionResponse> GetAsyncEnumerator(CancellationToken token = default(CancellationToken))
        {
            if (started) throw new InvalidOperationException("A stream can be enumerated once.");
            if (token.CanBeCanceled && created.CanBeCanceled)
            {
                linked = CancellationTokenSource.CreateLinkedTokenSource(created, token);
                cancellationToken = linked.Token;
            }
            else if (token.CanBeCanceled)
            {
                cancellationToken = token;
            }
            return this;
        }

        public ValueTask<bool> MoveNextAsync()
        {
            return new ValueTask<bool>(Next());
        }

        private async Task<bool> Next()
        {
            if (finished) return false;
            if (cancellationToken.IsCancellationRequested)
            {
                finished = true;
                response?.Dispose(); // the connection closes: the proxy aborts the generation
                cancellationToken.ThrowIfCancellationRequested();
            }
            if (!started)
            {
                started = true;
                response = await service.SendAsync(body, false, cancellationToken).ConfigureAwait(false);
                Headers = ClientResult<object>.HeadersOf(response);
                // Cancelling closes the connection: the proxy aborts the backend's generation.
                registration = cancellationToken.Register(() => response.Dispose());
                var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
                reader = new StreamReader(stream, new UTF8Encoding(false));
            }
            while (true)
            {
                string line;
                try
                {
                    line = await reader.ReadLineAsync().ConfigureAwait(false);
                }
                catch (Exception e) when (e is ObjectDisposedException || e is IOException || e is HttpRequestException)
                {
                    finished = true;
                    cancellationToken.ThrowIfCancellationRequested();
                    throw new LocalAdapterException(0, "connection_error", null, null, "The stream was cut: " + e.Message, e);
                }
                if (line == null)
                {
                    finished = true;
                    cancellationToken.ThrowIfCancellationRequested();
                    return false;
                }
                if (!line.StartsWith("data:", StringComparison.Ordinal)) continue; // event names, comments, blank lines
                string data = line.Substring(line.Length > 5 && line[5] == ' ' ? 6 : 5);
                if (data == "[DONE]")
                {
                    finished = true;
                    return false;
                }
                var frame = Json.Parse(data) as IDictionary<string, object>;
                if (frame != null && frame.ContainsKey("error") && !frame.ContainsKey("choices"))
                {
                    finished = true;
                    throw LocalAdapterException.FromBody(500, data); // the server's error event ends the stream
                }
                Current = ChatCompletionResponse.FromJson(data);
                Accumulated.Add(Current);
                return true;
            }
        }

        public ValueTask DisposeAsync()
        {
            registration.Dispose();
            linked?.Dispose();
            reader?.Dispose();
            response?.Dispose();
            finished = true;
            return default(ValueTask);
        }
    }
}
