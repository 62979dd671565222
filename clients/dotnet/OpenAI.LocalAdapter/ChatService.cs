// POST /v1/chat/completions with retries (429, 502, 503, 504, connection failures; honouring
// Retry-After; never once a stream has started), timeouts, and typed errors.
using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public class ChatService : IChatService
    {
        private readonly HttpClient http;
        private readonly LocalAdapterConfig config;
        private readonly Uri endpoint;

        public ChatService(HttpClient http, LocalAdapterConfig config)
        {
            this.http = http;
            this.config = config;
            string baseUrl = (config.BaseUrl ?? "http://localhost:9000").TrimEnd('/');
            if (!baseUrl.EndsWith("/v1", StringComparison.Ordinal)) baseUrl += "/v1";
            endpoint = new Uri(baseUrl + "/chat/completions");
        }

        public async Task<ChatCompletionResponse> CreateCompletionAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken))
        {
            return (await CreateCompletionResultAsync(request, cancellationToken).ConfigureAwait(false)).Value;
        }

        public async Task<ClientResult<ChatCompletionResponse>> CreateCompletionResultAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken))
        {
            string body = request.ToJson(config.DefaultModel, false);
            using (var response = await SendAsync(body, true, cancellationToken).ConfigureAwait(false))
            {
                string text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                return new ClientResult<ChatCompletionResponse>(ChatCompletionResponse.FromJson(text), (int)response.StatusCode, ClientResult<ChatCompletionResponse>.HeadersOf(response));
            }
        }

        public IAsyncEnumerable<ChatCompletionResponse> CreateCompletionStreamAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken))
        {
            return new ChatCompletionStream(this, request.ToJson(config.DefaultModel, true), cancellationToken);
        }

        /// <summary>The reply's head once it is a success; retried while it is a passing failure.</summary>
        internal async Task<HttpResponseMessage> SendAsync(string body, bool whole, CancellationToken cancellationToken)
        {
            for (int attempt = 0; ; attempt++)
            {
                var message = new HttpRequestMessage(HttpMethod.Post, endpoint) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                if (!string.IsNullOrEmpty(config.ApiKey)) message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", config.ApiKey);
                HttpResponseMessage response;
                try
                {
                    response = await http.SendAsync(message, whole ? HttpCompletionOption.ResponseContentRead : HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                }
                catch (HttpRequestException) when (attempt < config.MaxRetries)
                {
                    await Task.Delay(Backoff(attempt, null), cancellationToken).ConfigureAwait(false);
                    continue;
                }
                catch (HttpRequestException e)
                {
                    throw new LocalAdapterException(0, "connection_error", null, null, "Cannot reach " + endpoint + ": " + e.Message, e);
                }
                catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new LocalAdapterException(0, "timeout_error", null, null, "No reply within " + config.Timeout + ".", e);
                }
                finally
                {
                    message.Dispose();
                }
                int status = (int)response.StatusCode;
                if (response.IsSuccessStatusCode) return response;
                if (Retryable(status) && attempt < config.MaxRetries)
                {
                    TimeSpan wait = Backoff(attempt, response.Headers.RetryAfter);
                    response.Dispose();
                    await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                string text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                var error = LocalAdapterException.FromBody(status, text);
                error.Headers = ClientResult<object>.HeadersOf(response);
                response.Dispose();
                throw error;
            }
        }

        private static bool Retryable(int status)
        {
            return status == 429 || status == (int)HttpStatusCode.BadGateway || status == (int)HttpStatusCode.ServiceUnavailable || status == (int)HttpStatusCode.GatewayTimeout;
        }

        private TimeSpan Backoff(int attempt, RetryConditionHeaderValue retryAfter)
        {
            if (retryAfter != null)
            {
                if (retryAfter.Delta.HasValue) return retryAfter.Delta.Value;
                if (retryAfter.Date.HasValue)
                {
                    TimeSpan until = retryAfter.Date.Value - DateTimeOffset.UtcNow;
                    return until > TimeSpan.Zero ? until : TimeSpan.Zero;
                }
            }
            return TimeSpan.FromTicks((long)(config.RetryBase.Ticks * Math.Pow(2, attempt)));
        }
    }
}
